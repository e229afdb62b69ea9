import json

import pytest

from regvault.errors import InvalidInput
from regvault.setup import custom_resource
from regvault.setup import steps as setup_steps
from regvault.setup.custom_resource import failure_reason
from regvault.setup.steps import SetupConfig, launch_action

PROPS = {"Name": "rv", "Region": "eu-west-1", "InstanceId": "i-0123456789abcdef0", "BucketName": "b"}


def test_properties_arrive_as_strings_and_are_typed():
    config = SetupConfig.from_properties(
        {
            **PROPS,
            "RecoveryWindowDays": "30",
            "EnableUi": "true",
            "ReplaceExistingProfile": "false",
            "RootDirectory": "/reg/",
        }
    )
    assert (config.recovery_days, config.enable_ui, config.replace_existing_profile, config.root) == (
        30,
        True,
        False,
        "reg",
    )


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ({k: v for k, v in PROPS.items() if k != "BucketName"}, "BucketName is missing"),
        ({**PROPS, "RegistryPort": "https"}, "bad value"),
    ],
)
def test_bad_properties_are_one_line_errors(props, message):
    with pytest.raises(InvalidInput, match=message):
        SetupConfig.from_properties(props)


def test_unknown_launch_action():
    with pytest.raises(InvalidInput, match="unknown launch action"):
        launch_action(SetupConfig.from_properties(PROPS), None, {"action": "dance"})


def test_command_still_running_after_the_timeout_gives_up(monkeypatch):
    config = SetupConfig.from_properties({**PROPS, "CommandTimeoutSeconds": "30"})
    monkeypatch.setattr(setup_steps, "command_status", lambda ssm, cid, iid: ("InProgress", ""))
    assert setup_steps.command(config, None, "cmd", 0)["done"] is False
    out = setup_steps.command(config, None, "cmd", 1)
    assert out["done"] is True and out["ok"] is False and "still InProgress after 30 s" in out["error"]


def test_failure_reason_reads_lambda_error_messages():
    cause = json.dumps(
        {"errorMessage": "instance i-1 already has instance profile x", "errorType": "SetupError"}
    )
    assert (
        failure_reason({"Error": "SetupError", "Cause": cause})
        == "SetupError: instance i-1 already has instance profile x"
    )
    assert (
        failure_reason({"Error": "LaunchFailed", "Cause": "ended Failed\nline2"})
        == "LaunchFailed: ended Failed line2"
    )
    assert failure_reason(None) == "setup failed"


def test_respond_without_a_custom_resource_is_a_no_op():
    assert custom_resource.respond({}, "SUCCESS", "ok") == 0
    with pytest.raises(setup_steps.SetupError, match="not https"):
        custom_resource.respond({"ResponseURL": "ftp://x"}, "SUCCESS", "ok")


def test_a_response_stays_under_cloudformations_4096_bytes():
    request = {
        "StackId": "arn:aws:cloudformation:us-east-1:1:stack/s/x" * 3,
        "RequestId": "r",
        "LogicalResourceId": "Setup",
    }
    body = custom_resource.response_body(request, "FAILED", "x" * 10_000, {"Endpoint": "h" * 200})
    assert len(body) <= 4096 and json.loads(body)["Reason"].startswith("xxx")
    with pytest.raises(custom_resource.SetupError, match="over CloudFormation's 4096"):
        custom_resource.response_body(request, "SUCCESS", "ok", {"Big": "y" * 5000})


def test_agent_checks_reboot_once_after_the_grace_when_allowed(monkeypatch):
    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: False)
    config = SetupConfig.from_properties({**PROPS, "AgentGraceSeconds": "30", "ManagedTimeoutSeconds": "90"})
    assert setup_steps.managed(config, None, {"attempt": 0})["give_up"] is False  # 15 s: keep waiting
    failed = setup_steps.managed(config, None, {"attempt": 1})  # 30 s, no reboot allowed
    assert failed["give_up"] and "AllowReboot=true" in failed["error"] and not failed["reboot"]
    allowed = SetupConfig.from_properties({**PROPS, "AgentGraceSeconds": "30", "AllowReboot": "true"})
    assert setup_steps.managed(allowed, None, {"attempt": 1}) == {
        "online": False,
        "attempt": 2,
        "rebooted": False,
        "reboot": True,
        "give_up": False,
    }
    after = setup_steps.managed(allowed, None, {"attempt": 2, "rebooted": True})
    assert not after["reboot"] and not after["give_up"]  # waits up to ManagedTimeoutSeconds after it
    with pytest.raises(setup_steps.SetupError, match="AllowReboot is false"):
        setup_steps.reboot(config, None, {})
