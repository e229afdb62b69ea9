"""AutoRepair's hand-over, shared by the two Lambdas that finish a scheduled audit (AuditFunction and
the distributed audit's reduce step): they stay read-only and hand the repair to the RepairFunction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regvault.audit.findings import AuditReport
from regvault.aws.services import FunctionInvoker
from regvault.repair.usecase import needs_healing


def hand_over_to_repair(
    report: AuditReport, repair_function: str | None, log: Callable[..., Any], invoker: Any = None
) -> bool:
    """When AutoRepair is on (``repair_function`` set) and some live image is broken and recoverable,
    invoke the RepairFunction asynchronously with ``{"heal": true}``; True when it was invoked."""
    if not repair_function or not needs_healing(report):
        return False
    (invoker or FunctionInvoker(repair_function)).invoke_async({"heal": True, "reason": "scheduled audit"})
    log("broken images handed to self-healing", extra={"function": repair_function})
    return True
