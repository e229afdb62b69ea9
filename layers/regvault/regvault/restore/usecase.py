"""The restore use case: plan, and when asked apply the plan, restart the registry, notify.

The RestoreFunction and ``regvault restore`` both call ``restore_images``; the Lambda passes a registry
restarter (SSM) and a notifier (SNS), the CLI neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from regvault.images.closure import Need
from regvault.restore.apply import apply_plan
from regvault.restore.planner import RestorePlan, plan_restore
from regvault.storage.layout import RegistryLayout
from regvault.storage.lease import holder_id, release_lease, take_lease
from regvault.storage.store import RegistryStore


class Notifier(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


class Restarter(Protocol):
    """Restarts the registry (drops its in-memory blob-descriptor cache); returns a command id."""

    def restart(self) -> str: ...


@dataclass(frozen=True)
class RestoreRequest:
    repository: str
    tag: str | None  # None: every tag of the repository (needs ``at``)
    to: str | None = None
    previous: int | None = None
    at: datetime | None = None
    apply: bool = False
    force: bool = False  # move the tag even if someone pushed after the plan was made


@dataclass(frozen=True)
class RestoreOutcome:
    plan: RestorePlan
    document: dict[str, Any]  # RestorePlan.as_dict
    applied: bool
    copied: int
    registry_restart: str | None  # the restart's command id, when one was sent


def restore_images(
    store: RegistryStore,
    layout: RegistryLayout,
    request: RestoreRequest,
    *,
    restarter: Restarter | None = None,
    notifier: Notifier | None = None,
    progress: Callable[[int, int, Need], None] | None = None,
) -> RestoreOutcome:
    """Plan the restore; with ``request.apply`` and a restorable plan, copy the versions forward, restart
    the registry when blobs or manifests came back, and send a notice. A plan that is not restorable
    writes nothing (the outcome says what is missing)."""
    plan, _ = plan_restore(
        store,
        layout,
        request.repository,
        request.tag,
        to=request.to,
        previous=request.previous,
        at=request.at,
    )
    document = plan.as_dict(layout)
    if not (request.apply and plan.restorable):
        return RestoreOutcome(plan, document, False, 0, None)
    # one writer at a time: no GC sweeps (or undoes) while this restore copies, nor a second restore
    now = datetime.now(UTC)
    lease = take_lease(store, layout, holder_id("restore", now), "restore", now)
    try:
        mark = {"regvault-restore": lease.holder}  # the audit knows regvault's own writes by it
        copied = apply_plan(store, plan, force=request.force, progress=progress, tag_metadata=mark).copied
    finally:
        release_lease(store, layout, lease)
    restart = restarter.restart() if restarter is not None and plan.brings_blobs_back else None
    if notifier is not None:
        notifier.publish(*plan.notice(copied))
    return RestoreOutcome(plan, document, True, copied, restart)
