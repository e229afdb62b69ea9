"""SSM Run Command that really runs (harness.ssm_runner), in-process with moto: a registered instance's
commands run its document's aws:runShellScript step, and GetCommandInvocation answers as SSM does."""

import base64
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest
import yaml
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from harness import ssm_agent, ssm_runner
from harness.ssm_runner import Host

TERMINAL = {"Success", "Failed", "TimedOut", "Cancelled"}
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"


@pytest.fixture(scope="module")
def session():
    """One session for the module's clients (each test's own session would load the service models again)."""
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


@pytest.fixture
def aws(monkeypatch, session):
    """moto with the agent model and the runner installed; no host, run or back-off leaks between tests."""
    monkeypatch.setattr(ssm_runner, "_HOSTS", {})
    monkeypatch.setattr(ssm_runner, "_RUNS", {})
    monkeypatch.delenv("REGVAULT_INSTANCES_DIR", raising=False)
    monkeypatch.setattr(ssm_agent.AGENT, "backoff_s", 86400.0)  # a day: no registration without a reboot
    with mock_aws():
        ssm_agent.model_ssm_agent()
        ssm_runner.install()
        iam = session.client("iam")
        iam.create_role(RoleName="agent", AssumeRolePolicyDocument="{}")
        profile = iam.create_instance_profile(InstanceProfileName="agent")["InstanceProfile"]
        iam.add_role_to_instance_profile(InstanceProfileName="agent", RoleName="agent")
        yield SimpleNamespace(
            ec2=session.client("ec2"),
            ssm=session.client("ssm"),
            unchecked_ssm=session.client("ssm", config=Config(parameter_validation=False)),
            profile=profile["Arn"],
        )
        for run in list(ssm_runner._RUNS.values()):  # a failed test leaves no process or thread behind
            run.cancel()


def launch(aws, online=True):
    """An instance whose profile is associated after boot: its agent registers only after a reboot (or
    once its back-off runs out). (An AMI id moto does not list makes a Linux instance, and spares a
    describe_images that takes seconds.)"""
    instance = aws.ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1)["Instances"][0][
        "InstanceId"
    ]
    aws.ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": aws.profile}, InstanceId=instance)
    if online:
        aws.ec2.reboot_instances(InstanceIds=[instance])
    return instance


def online_ids(aws):
    return [i["InstanceId"] for i in aws.ssm.describe_instance_information()["InstanceInformationList"]]


def document(aws, name, lines, timeout_s=20):
    """A Command document: one aws:runShellScript step; Greeting (pattern), Mode (values, default)."""
    content = {
        "schemaVersion": "2.2",
        "description": "test document",
        "parameters": {
            "Greeting": {"type": "String", "allowedPattern": "^[A-Za-z]+$"},
            "Mode": {"type": "String", "allowedValues": ["fast", "slow"], "default": "fast"},
        },
        "mainSteps": [
            {
                "action": "aws:runShellScript",
                "name": "run",
                "inputs": {"timeoutSeconds": str(timeout_s), "runCommand": ["#!/bin/bash", *lines]},
            }
        ],
    }
    aws.ssm.create_document(
        Content=yaml.safe_dump(content), Name=name, DocumentType="Command", DocumentFormat="YAML"
    )
    return name


def register(instance, work, **env):
    ssm_runner.register(instance, Host(env={"PATH": HOST_PATH, **env}, work=work))


def send(aws, instance, name, **parameters):
    return aws.ssm.send_command(
        InstanceIds=[instance],
        DocumentName=name,
        Parameters={k: [v] for k, v in {"Greeting": "World", **parameters}.items()},
    )["Command"]["CommandId"]


def wait_for(aws, command_id, instance, until=TERMINAL, deadline_s=20.0):
    deadline = time.monotonic() + deadline_s
    while True:
        answer = aws.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance)
        if answer["Status"] in until:
            return answer
        assert time.monotonic() < deadline, f"still {answer['Status']} after {deadline_s} s"
        time.sleep(0.1)


def wait_for_file(path, deadline_s=20.0):
    deadline = time.monotonic() + deadline_s
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.1)
    return path.read_text().strip()


def gone(pid):
    """The process is dead: no such pid, or a zombie. ``sh -c <script>`` forks the script, so once the
    group is killed the script and its children are orphans, reaped only if this machine's init reaps."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid, deadline_s=5.0):
    deadline = time.monotonic() + deadline_s
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} survived"
        time.sleep(0.05)


def test_success_captures_output_substitutes_parameters_and_runs_with_only_the_host_env(aws, tmp_path):
    # Given an Online registered instance whose host environment is a PATH and one variable
    instance = launch(aws)
    register(instance, tmp_path, REGVAULT_MARK="m")
    name = document(
        aws,
        "Hello",
        [
            'echo "hello {{ Greeting }} in {{Mode}} mode"',
            'echo "shell=${BASH_VERSION:+bash}"',  # the #! line picked bash, not sh
            "echo to-stderr >&2",
            "env",
        ],
    )

    # When a command is sent with Greeting only (Mode from its default)
    command_id = send(aws, instance, name)
    answer = wait_for(aws, command_id, instance)

    # Then it succeeded with its output, the parameters substituted
    assert (answer["Status"], answer["StatusDetails"], answer["ResponseCode"]) == ("Success", "Success", 0)
    out = answer["StandardOutputContent"].splitlines()
    assert out[:2] == ["hello World in fast mode", "shell=bash"]
    assert answer["StandardErrorContent"] == "to-stderr\n"
    assert (answer["CommandId"], answer["InstanceId"], answer["DocumentName"]) == (command_id, instance, name)
    assert answer["PluginName"] == "aws:runShellScript"
    # and it ran with exactly the host's environment, none of this process's (AWS_* keys included)
    env = dict(line.split("=", 1) for line in out[2:])
    assert env["PATH"] == HOST_PATH and env["REGVAULT_MARK"] == "m"
    assert os.environ["AWS_ACCESS_KEY_ID"] and not [k for k in env if k.startswith("AWS_")]
    # and the script it ran is the rendered document in the host's work directory
    script = (tmp_path / command_id / "_script.sh").read_text()
    assert script.startswith("#!/bin/bash\n") and 'echo "hello World in fast mode"' in script


def test_exit_code_3_is_failed_with_its_response_code(aws, tmp_path):
    instance = launch(aws)
    register(instance, tmp_path)
    name = document(aws, "Exit3", ["echo before", "exit 3", "echo never"])

    answer = wait_for(aws, send(aws, instance, name, Mode="slow"), instance)

    assert (answer["Status"], answer["StatusDetails"], answer["ResponseCode"]) == ("Failed", "Failed", 3)
    assert answer["StandardOutputContent"] == "before\n"


def test_output_is_cut_at_24000_characters_of_stdout_and_8000_of_stderr(aws, tmp_path):
    # Given a script printing 30,000 characters to stdout and 10,000 to stderr
    instance = launch(aws)
    register(instance, tmp_path)
    name = document(aws, "Loud", ["yes 0123456789 | head -c 30000", "yes abcdefghi | head -c 10000 >&2"])

    # When it has run
    answer = wait_for(aws, send(aws, instance, name), instance)

    # Then each stream is its first characters only, as SSM answers them
    assert answer["Status"] == "Success"
    assert answer["StandardOutputContent"] == ("0123456789\n" * 3000)[:24_000]
    assert answer["StandardErrorContent"] == ("abcdefghi\n" * 1000)[:8_000]


@pytest.mark.parametrize(
    "parameters, unknown",
    [
        ({"Greeting": "not allowed!"}, False),  # allowedPattern
        ({"Mode": "medium"}, False),  # allowedValues
        ({"Greeting": "World", "Extra": "x"}, True),  # not a parameter of the document
    ],
)
def test_invalid_parameters_are_refused_and_nothing_runs(aws, tmp_path, parameters, unknown):
    # Given a registered Online instance and a document that would leave a marker file
    instance = launch(aws)
    register(instance, tmp_path)
    marker = tmp_path / "ran"
    name = document(aws, "Marker", [f"touch {marker}"])

    # When a command is sent with a value its document does not allow
    with pytest.raises(ClientError) as raised:
        send(aws, instance, name, **parameters)

    # Then SendCommand fails with InvalidParameters, no command is recorded and nothing ran
    assert raised.value.response["Error"]["Code"] == "InvalidParameters"
    assert ("does not support" in str(raised.value)) is unknown
    assert aws.ssm.list_commands()["Commands"] == []
    assert ssm_runner._RUNS == {}  # no run was started
    assert not marker.exists() and list(tmp_path.iterdir()) == []


def test_step_timeout_is_timed_out_and_kills_the_process_group(aws, tmp_path):
    # Given a step with timeoutSeconds 1 whose script (and a child of it) would sleep 30 s
    instance = launch(aws)
    register(instance, tmp_path)
    name = document(
        aws,
        "Slow",
        [f"echo $$ > {tmp_path}/pid", f"sleep 30 & echo $! > {tmp_path}/child", "wait"],
        timeout_s=1,
    )

    # When it has run past its timeout
    answer = wait_for(aws, send(aws, instance, name), instance)

    # Then it timed out, and the script and its child are gone
    assert (answer["Status"], answer["StatusDetails"]) == ("TimedOut", "ExecutionTimedOut")
    wait_gone(int((tmp_path / "pid").read_text()))
    wait_gone(int((tmp_path / "child").read_text()))


def test_cancel_command_while_in_progress_is_cancelled_and_kills_the_script(aws, tmp_path):
    # Given a command in progress
    instance = launch(aws)
    register(instance, tmp_path)
    name = document(aws, "Long", [f"echo $$ > {tmp_path}/pid", "sleep 30"])
    command_id = send(aws, instance, name)
    assert wait_for(aws, command_id, instance, until={"InProgress"})["Status"] == "InProgress"
    pid = int(wait_for_file(tmp_path / "pid"))

    # When it is cancelled
    aws.ssm.cancel_command(CommandId=command_id, InstanceIds=[instance])

    # Then it ends Cancelled and its script is gone
    answer = wait_for(aws, command_id, instance)
    assert (answer["Status"], answer["StatusDetails"]) == ("Cancelled", "Cancelled")
    wait_gone(pid)


def test_list_commands_follows_the_run_and_a_stack_delete_cancels_the_launch_in_progress(aws, tmp_path):
    from regvault.setup.custom_resource import Trigger, stop_running
    from regvault.setup.steps import SetupConfig

    # Given the launch document's command in progress on the instance
    instance = launch(aws)
    register(instance, tmp_path)
    name = document(aws, "regvault-launch", [f"echo $$ > {tmp_path}/pid", "sleep 30"])
    command_id = send(aws, instance, name)
    wait_for(aws, command_id, instance, until={"InProgress"})
    pid = int(wait_for_file(tmp_path / "pid"))
    [listed] = aws.ssm.list_commands(InstanceId=instance)["Commands"]
    assert listed["Status"] == "InProgress"  # moto alone says Success from the start

    # When the stack is deleted: the custom resource stops what still runs
    config = SetupConfig.from_properties(
        {"Name": "s", "Region": "us-east-1", "InstanceId": instance, "BucketName": "b-bucket",
         "LaunchDocument": "regvault-launch"}
    )  # fmt: skip
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(
        name="setup", definition='{"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}',
        roleArn="arn:aws:iam::123456789012:role/setup",
    )["stateMachineArn"]  # fmt: skip
    result = stop_running(Trigger(sfn=sfn, state_machine_arn=machine, ssm=aws.ssm), config)

    # Then it cancelled the command, which ends Cancelled, script gone, and is listed so
    assert result["cancelled"] == [command_id], result
    assert wait_for(aws, command_id, instance)["Status"] == "Cancelled"
    wait_gone(pid)
    assert aws.ssm.list_commands(CommandId=command_id)["Commands"][0]["Status"] == "Cancelled"


def test_cancel_command_of_an_unknown_command_is_invalid_command_id(aws):
    with pytest.raises(ClientError) as raised:
        aws.ssm.cancel_command(CommandId="00000000-0000-0000-0000-000000000000")
    assert raised.value.response["Error"]["Code"] == "InvalidCommandId"


def test_command_stays_pending_until_the_agent_is_online_then_runs(aws, tmp_path):
    # Given a registered instance whose agent is not Online (profile associated after boot, no reboot)
    instance = launch(aws, online=False)
    register(instance, tmp_path)
    marker = tmp_path / "ran"
    name = document(aws, "Marker", [f"touch {marker}", "echo ran"])
    assert online_ids(aws) == []

    # When a command is sent to it
    command_id = send(aws, instance, name)

    # Then it is Pending, and stays so, nothing run
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        answer = aws.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance)
        assert (answer["Status"], answer["StatusDetails"]) == ("Pending", "Pending")
        time.sleep(0.2)
    assert not marker.exists()

    # When the instance is rebooted (its agent registers)
    aws.ec2.reboot_instances(InstanceIds=[instance])

    # Then the command runs
    assert online_ids(aws) == [instance]
    answer = wait_for(aws, command_id, instance)
    assert (answer["Status"], answer["StandardOutputContent"]) == ("Success", "ran\n")
    assert marker.exists()


def test_an_instance_launched_with_its_profile_is_online_at_boot(aws, tmp_path):
    instance = aws.ec2.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, IamInstanceProfile={"Arn": aws.profile}
    )["Instances"][0]["InstanceId"]
    assert instance in online_ids(aws)  # no reboot: the agent registered with the profile's role at boot
    register(instance, tmp_path)
    assert (
        wait_for(aws, send(aws, instance, document(aws, "Boot", ["echo up"])), instance)["Status"]
        == "Success"
    )


def test_command_runs_once_the_agents_back_off_has_run_out(aws, tmp_path, monkeypatch):
    instance = launch(aws, online=False)
    register(instance, tmp_path)
    monkeypatch.setattr(ssm_agent.AGENT, "backoff_s", 0.0)

    answer = wait_for(aws, send(aws, instance, document(aws, "Echo", ["echo ok"])), instance)

    assert (answer["Status"], answer["StandardOutputContent"]) == ("Success", "ok\n")


def test_command_never_delivered_times_out_with_delivery_timed_out(aws, tmp_path):
    # Given an instance that never comes Online, and a command with a 1 s delivery timeout (below the
    # API's minimum of 30 s: sent without client-side validation)
    instance = launch(aws, online=False)
    register(instance, tmp_path)
    marker = tmp_path / "ran"
    name = document(aws, "Marker", [f"touch {marker}"])

    # When the delivery timeout passes
    command_id = aws.unchecked_ssm.send_command(
        InstanceIds=[instance], DocumentName=name, Parameters={"Greeting": ["World"]}, TimeoutSeconds=1
    )["Command"]["CommandId"]
    answer = wait_for(aws, command_id, instance)

    # Then it timed out undelivered, and nothing ran
    assert (answer["Status"], answer["StatusDetails"]) == ("TimedOut", "DeliveryTimedOut")
    assert not marker.exists()


def test_cancel_command_while_pending_is_cancelled_and_nothing_runs(aws, tmp_path):
    instance = launch(aws, online=False)
    register(instance, tmp_path)
    marker = tmp_path / "ran"
    command_id = send(aws, instance, document(aws, "Marker", [f"touch {marker}"]))
    assert wait_for(aws, command_id, instance, until={"Pending"})["Status"] == "Pending"

    aws.ssm.cancel_command(CommandId=command_id)
    answer = wait_for(aws, command_id, instance)

    assert (answer["Status"], answer["StatusDetails"]) == ("Cancelled", "Cancelled")
    assert not marker.exists()


def test_instance_without_a_registered_host_keeps_motos_answer_and_runs_nothing(aws, tmp_path):
    # Given two Online instances, only one of them with a registered host
    plain, hosted = launch(aws), launch(aws)
    register(hosted, tmp_path)
    runs = tmp_path / "runs"
    name = document(aws, "Count", [f"echo run >> {runs}", "echo ran"])

    # When one command goes to both
    command_id = aws.ssm.send_command(
        InstanceIds=[plain, hosted], DocumentName=name, Parameters={"Greeting": ["World"]}
    )["Command"]["CommandId"]

    # Then the plain instance answers moto's Success at once, with no output, and runs nothing
    answer = aws.ssm.get_command_invocation(CommandId=command_id, InstanceId=plain)
    assert (answer["Status"], answer["ResponseCode"], answer["StandardOutputContent"]) == ("Success", 0, "")
    assert list(ssm_runner._RUNS) == [(command_id, hosted)]
    # and the hosted one really runs it, once
    assert wait_for(aws, command_id, hosted)["StandardOutputContent"] == "ran\n"
    assert runs.read_text() == "run\n"


def test_instance_without_a_host_gets_no_parameter_check(aws):
    # moto's behaviour for unregistered instances: any parameter value is recorded
    instance = launch(aws)
    name = document(aws, "Echo", ["echo {{ Greeting }}"])

    command_id = send(aws, instance, name, Greeting="not allowed!")

    assert aws.ssm.get_command_invocation(CommandId=command_id, InstanceId=instance)["Status"] == "Success"
    assert ssm_runner._RUNS == {}


def test_localize_changes_the_parameters_the_host_renders(aws, tmp_path):
    instance = launch(aws)
    host = Host(env={"PATH": HOST_PATH}, work=tmp_path, localize=lambda p: {**p, "Greeting": "Local"})
    ssm_runner.register(instance, host)

    answer = wait_for(aws, send(aws, instance, document(aws, "Echo", ["echo {{ Greeting }}"])), instance)

    assert answer["StandardOutputContent"] == "Local\n"


def test_install_is_idempotent():
    from moto.ssm.models import SimpleSystemManagerBackend

    ssm_runner.install()
    patched = SimpleSystemManagerBackend.send_command
    ssm_runner.install()
    assert SimpleSystemManagerBackend.send_command is patched


def test_a_host_is_found_from_its_registration_file(tmp_path, monkeypatch):
    # Given the emulator's registration file of an instance
    monkeypatch.setattr(ssm_runner, "_HOSTS", {})
    monkeypatch.setenv("REGVAULT_INSTANCES_DIR", str(tmp_path))
    spec = {"env": {"PATH": "/bin"}, "holder_pid": 4242, "run_dir": str(tmp_path / "run"), "s3": {}}
    (tmp_path / "i-0123.json").write_text(json.dumps(spec))

    # When its host is looked up
    host = ssm_runner._host("i-0123")

    # Then commands enter the instance's mount namespace, and the host is kept
    assert host is not None and host.env == {"PATH": "/bin"}
    assert host.argv_prefix == ["nsenter", "--mount=/proc/4242/ns/mnt", "--"]
    assert host.work == tmp_path / "run" / "commands"
    assert ssm_runner._host("i-0123") is host and ssm_runner._host("i-other") is None


def test_localize_launch_adds_the_emulators_s3_settings_and_keeps_every_other_byte():
    # Given a rendered config (with a comment and quoting yaml.safe_dump would not keep)
    rendered = (
        'version: 0.1\n# ours\nstorage:\n  s3:\n    bucket: "reg"\n    region: us-east-1\n'
        "http:\n  addr: :5000\n"
    )
    encoded = base64.b64encode(rendered.encode()).decode()
    s3 = {"regionendpoint": "https://127.0.0.1:1", "accesskey": "a", "secretkey": "s"}

    # When it is localized
    out = ssm_runner.localize_launch({"ConfigBase64": encoded, "Other": "x"}, s3)

    # Then the settings are lines added under storage.s3, and nothing else changed
    text = base64.b64decode(out["ConfigBase64"]).decode()
    added = '    regionendpoint: "https://127.0.0.1:1"\n    accesskey: "a"\n    secretkey: "s"\n'
    assert text == rendered.replace("  s3:\n", "  s3:\n" + added)
    assert yaml.safe_load(text)["storage"]["s3"] == {"bucket": "reg", "region": "us-east-1", **s3}
    assert out["Other"] == "x"


def test_localize_launch_leaves_parameters_alone_without_s3_settings_config_or_s3_section():
    encoded = base64.b64encode(b"version: 0.1\nstorage:\n  s3:\n    bucket: reg\n").decode()
    s3 = {"accesskey": "a"}
    no_s3_section = base64.b64encode(b"version: 0.1\nstorage:\n  filesystem: {}\n").decode()

    assert ssm_runner.localize_launch({"ConfigBase64": encoded}, {}) == {"ConfigBase64": encoded}
    assert ssm_runner.localize_launch({"Other": "x"}, s3) == {"Other": "x"}
    assert ssm_runner.localize_launch({"ConfigBase64": no_s3_section}, s3) == {"ConfigBase64": no_s3_section}
