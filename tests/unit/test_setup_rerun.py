"""`regvault setup` re-runs the Setup state machine: the ARN it is given, and how it follows the run."""

from datetime import UTC, datetime

import pytest

from regvault.errors import InvalidInput
from regvault.setup.rerun import StateMachineArn, follow, start_rerun

GOOD = "arn:aws:states:eu-west-1:123456789012:stateMachine:regvault-setup"


def test_a_state_machine_arn_is_split_into_its_parts():
    arn = StateMachineArn.parse(GOOD)
    assert (arn.partition, arn.region, arn.account, arn.name) == (
        "aws",
        "eu-west-1",
        "123456789012",
        "regvault-setup",
    )
    assert arn.text == GOOD
    assert StateMachineArn.parse(GOOD.replace(":aws:", ":aws-cn:")).partition == "aws-cn"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-an-arn",
        "regvault-setup",
        "arn:aws:states:eu-west-1:123456789012:stateMachine",  # no name
        "arn:aws:states::123456789012:stateMachine:x",  # no region
        "arn:aws:states:eu-west-1::stateMachine:x",  # no account
        "arn:aws:lambda:eu-west-1:123456789012:function:x",  # not Step Functions
        "arn:aws:states:eu-west-1:123456789012:execution:x:run-1",  # an execution, not the machine
        "arn:aws:states:eu-west-1:123456789012:stateMachine:x:extra",
        "arn:aws:states:eu-west-1:123456789012:stateMachine:x\nSecond line",
        "x" * 500,
    ],
)
def test_anything_else_is_a_one_line_error_naming_the_expected_shape(text):
    with pytest.raises(InvalidInput) as info:
        StateMachineArn.parse(text)
    message = str(info.value)
    assert message.startswith("not a state machine ARN: ")
    assert "arn:PARTITION:states:REGION:ACCOUNT:stateMachine:NAME" in message
    assert "\n" not in message and len(message) < 200


class Machine:
    def __init__(self, statuses):
        self.statuses, self.started, self.asked = list(statuses), [], 0

    def last_input(self):
        return {"config": {"Name": "regvault"}, "request": {"ResponseURL": "https://cfn"}}

    def start(self, name, document):
        self.started.append((name, document))
        return f"arn:aws:states:eu-west-1:1:execution:m:{name}"

    def status(self, execution_arn):
        self.asked += 1
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {"status": status, **({"error": "E", "cause": "C"} if status == "FAILED" else {})}


def test_a_rerun_starts_with_the_last_input_and_answers_no_custom_resource():
    machine = Machine(["RUNNING"])
    execution = start_rerun(machine, now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    [(name, document)] = machine.started
    assert name == "cli-20260102T030405" and execution.endswith(name)
    assert document == {"config": {"Name": "regvault"}, "request": {}}


def test_following_polls_until_the_run_ends():
    machine, sleeps = Machine(["RUNNING", "RUNNING", "FAILED"]), []
    run = follow(machine, "exec", poll=0.5, clock=lambda: 0.0, sleep=sleeps.append)
    assert (run.status, run.error, run.cause, run.timed_out, run.ok) == ("FAILED", "E", "C", False, False)
    assert machine.asked == 3 and sleeps == [0.5, 0.5]
    assert run.as_dict() == {"execution": "exec", "status": "FAILED", "error": "E", "cause": "C"}


def test_following_gives_up_at_the_timeout_and_without_wait_asks_once():
    clock = iter([0.0, 5.0, 11.0])
    run = follow(Machine(["RUNNING"]), "exec", timeout=10, clock=lambda: next(clock), sleep=lambda s: None)
    assert run.timed_out and not run.ok
    machine = Machine(["RUNNING", "SUCCEEDED"])
    run = follow(machine, "exec", wait=False, sleep=lambda s: pytest.fail("no wait"))
    assert (run.status, run.ok, machine.asked) == ("RUNNING", True, 1)
