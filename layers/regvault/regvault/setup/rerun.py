"""``regvault setup``: run the Setup state machine again with the input of its last run, and follow it.

The CLI builds the Step Functions client (``regvault.aws``) and prints; the ARN parsing and the polling
live here, behind the ``Executions`` port.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from regvault.errors import InvalidInput

ARN_SHAPE = "arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME"
_ARN = re.compile(r"arn:([a-z][a-z0-9-]*):states:([a-z0-9-]+):([0-9]+):stateMachine:([^\s:]+)")


@dataclass(frozen=True)
class StateMachineArn:
    text: str
    partition: str
    region: str
    account: str
    name: str

    @classmethod
    def parse(cls, text: str) -> StateMachineArn:
        """Split a state machine ARN; anything else is a one-line InvalidInput naming the expected shape."""
        match = _ARN.fullmatch(text)
        if match is None:
            raise InvalidInput(f"not a state machine ARN: {text[:80]!r} (expected {ARN_SHAPE})")
        return cls(text, *match.groups())


class Executions(Protocol):
    """One state machine's executions (``regvault.aws.services.StateMachine``)."""

    def last_input(self) -> dict[str, Any]: ...

    def start(self, name: str, document: dict[str, Any]) -> str: ...

    def status(self, execution_arn: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SetupRun:
    execution: str
    status: str  # RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED
    error: str | None
    cause: str | None
    timed_out: bool = False  # still RUNNING when the wait ran out

    @property
    def ok(self) -> bool:
        return not self.timed_out and self.status in ("SUCCEEDED", "RUNNING")

    def as_dict(self) -> dict[str, Any]:
        return {"execution": self.execution, "status": self.status, "error": self.error, "cause": self.cause}


def start_rerun(machine: Executions, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """Start an execution with the last run's input; no custom resource answers this run (the CLI's)."""
    document = machine.last_input()
    document["request"] = {}
    return machine.start(f"cli-{now():%Y%m%dT%H%M%S}", document)


def follow(
    machine: Executions,
    execution: str,
    *,
    wait: bool = True,
    timeout: float = 3600,
    poll: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SetupRun:
    """The execution's status: once, or (``wait``) polled until it is no longer RUNNING or ``timeout``
    seconds have passed (then ``timed_out``)."""
    deadline = clock() + timeout
    while True:
        status = machine.status(execution)
        if status["status"] != "RUNNING" or not wait:
            break
        if clock() > deadline:
            return SetupRun(execution, "RUNNING", None, None, timed_out=True)
        sleep(poll)
    return SetupRun(execution, status["status"], status.get("error"), status.get("cause"))
