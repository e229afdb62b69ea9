import base64
import json
import shutil
import subprocess

import boto3
import pytest
import yaml

from harness.setup_local import load_template
from regvault.errors import InvalidInput
from regvault.setup.launch import LaunchSpec, command_status, is_managed, send_launch

SPEC = LaunchSpec(
    instance_id="i-0123456789abcdef0",
    bucket="reg-bucket",
    region="eu-west-1",
    root="reg",
    image="registry:3",
    port=443,
    htpasswd_secret="regvault/htpasswd",
    tls_secret="regvault/tls",
    notifications_url="https://hooks.example/registry",
)


@pytest.fixture(scope="module")
def document():
    template = load_template()
    return template["Resources"]["LaunchDocument"]["Properties"]["Content"]


def script_of(document) -> str:
    return document["mainSteps"][0]["inputs"]["runCommand"][0]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="make test installs shellcheck")
def test_launch_script_is_shellcheck_clean(document, tmp_path):
    script = tmp_path / "launch.sh"
    script.write_text(script_of(document))
    result = subprocess.run(
        ["shellcheck", "--shell=bash", str(script)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_script_with_parameters_substituted_is_valid_bash(document, tmp_path):
    script = script_of(document)
    for name, (value,) in SPEC.document_parameters().items():
        assert f"{{{{ {name} }}}}" in script
        script = script.replace(f"{{{{ {name} }}}}", value)
    assert "{{" not in script
    path = tmp_path / "launch.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], check=False).returncode == 0
    # every parameter the script uses is declared, with a pattern that rejects shell metacharacters
    declared = document["parameters"]
    assert set(declared) == set(SPEC.document_parameters())
    for name, (value,) in SPEC.document_parameters().items():
        pattern = declared[name].get("allowedPattern")
        if pattern:
            import re

            assert re.fullmatch(pattern, value)
            assert not re.fullmatch(pattern, "x'; rm -rf / #")


def test_parameters_carry_names_never_secret_values():
    params = SPEC.document_parameters()
    flat = json.dumps(params)
    assert "regvault/htpasswd" in flat and "regvault/tls" in flat
    config = base64.b64decode(params["ConfigBase64"][0]).decode()
    for word in ("accesskey", "secretkey", "BEGIN", "password", "$2b$", "regionendpoint"):
        assert word not in config and word not in flat
    assert params["ConfigPath"] == ["/etc/distribution/config.yml"]  # registry:3
    assert "/etc/regvault/htpasswd" in config and "/etc/regvault/tls.key" in config
    assert LaunchSpec(**{**SPEC.__dict__, "image": "registry:2.8.3"}).document_parameters()["ConfigPath"] == [
        "/etc/docker/registry/config.yml"
    ]


@pytest.mark.parametrize(
    "change", [{"image": "nginx:latest"}, {"port": 0}, {"htpasswd_secret": ""}, {"tls_secret": ""}]
)
def test_launch_spec_rejects_bad_settings(change):
    with pytest.raises(InvalidInput):
        LaunchSpec(**{**SPEC.__dict__, **change})


class FakeSsmInventory:
    """moto lacks describe_instance_information: this answers it, going Online after n calls."""

    def __init__(self, online_after: int | None) -> None:
        self.calls = 0
        self.online_after = online_after

    def describe_instance_information(self, Filters):
        self.calls += 1
        online = self.online_after is not None and self.calls > self.online_after
        return {"InstanceInformationList": [{"PingStatus": "Online"}] if online else []}


def test_is_managed_reads_the_agents_registration():
    assert not is_managed(FakeSsmInventory(None), "i-1")
    assert not is_managed(FakeSsmInventory(1), "i-1")
    assert is_managed(FakeSsmInventory(0), "i-1")


def test_send_launch_records_the_command_with_names_only(document):
    from moto import mock_aws

    with mock_aws():
        ssm = boto3.client("ssm", region_name="eu-west-1")
        ssm.create_document(
            Name="regvault-launch",
            Content=yaml.safe_dump(document),
            DocumentType="Command",
            DocumentFormat="YAML",
        )
        command_id = send_launch(ssm, "regvault-launch", SPEC)
        command = ssm.list_commands(CommandId=command_id)["Commands"][0]
        assert command["DocumentName"] == "regvault-launch"
        assert command["Parameters"]["HtpasswdSecretId"] == ["regvault/htpasswd"]
        # moto answers an invocation of a targeted instance at once, finished, with no output; an
        # instance the command was not sent to has no invocation (InvocationDoesNotExist): Pending
        assert command_status(ssm, command_id, SPEC.instance_id) == ("Success", "")
        assert command_status(ssm, command_id, "i-0fffffffffffffff0") == ("Pending", "")


class FakeInvocation:
    """GetCommandInvocation answering exactly what the test says (or raising its error code)."""

    def __init__(self, answer=None, error=None) -> None:
        self.answer, self.error = answer, error

    def get_command_invocation(self, CommandId, InstanceId):
        from botocore.exceptions import ClientError

        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "x"}}, "GetCommandInvocation")
        return self.answer


def test_command_status_reports_the_invocation_and_the_scripts_own_line():
    failed = FakeInvocation(
        {
            "Status": "Failed",
            "StandardErrorContent": "regvault: pulling registry:3 failed\n",
            "StandardOutputContent": "step 1\nstep 2\n",
        }
    )
    assert command_status(failed, "c-1", "i-1") == (
        "Failed",
        "regvault: pulling registry:3 failed | step 1 / step 2",
    )
    running = FakeInvocation({"Status": "InProgress", "StandardOutputContent": ""})
    assert command_status(running, "c-1", "i-1") == ("InProgress", "")
    assert command_status(FakeInvocation(error="InvocationDoesNotExist"), "c-1", "i-1") == ("Pending", "")
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        command_status(FakeInvocation(error="AccessDeniedException"), "c-1", "i-1")


def test_image_patterns_are_the_template_and_document_patterns(document):
    import re

    from regvault.setup.launch import REGISTRY_IMAGE_PATTERN, UI_IMAGE_PATTERN

    template = load_template()
    assert template["Parameters"]["RegistryImage"]["AllowedPattern"] == REGISTRY_IMAGE_PATTERN
    assert template["Parameters"]["UiImage"]["AllowedPattern"] == UI_IMAGE_PATTERN
    assert document["parameters"]["RegistryImage"]["allowedPattern"] == REGISTRY_IMAGE_PATTERN
    assert document["parameters"]["UiImage"]["allowedPattern"] == UI_IMAGE_PATTERN
    # the default comes from ECR Public; mirrors in private ECR and Docker Hub names are allowed
    assert template["Parameters"]["RegistryImage"]["Default"] == "public.ecr.aws/docker/library/registry:2"
    for image in (
        "public.ecr.aws/docker/library/registry:2",
        "public.ecr.aws/docker/library/registry:3.0.0",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/registry:2.8.3",
        "registry:2",
        "docker.io/library/registry:3",
    ):
        assert re.fullmatch(REGISTRY_IMAGE_PATTERN, image), image
    for image in ("nginx:1", "evil.example/registry:2", "registry:4", "registry:2;reboot", "registry"):
        assert not re.fullmatch(REGISTRY_IMAGE_PATTERN, image), image
    assert re.fullmatch(UI_IMAGE_PATTERN, template["Parameters"]["UiImage"]["Default"])


def test_aws_cli_image_is_a_parameter_with_the_templates_default_and_pattern(document):
    import re

    from regvault.setup.launch import AWS_CLI_IMAGE_PATTERN, DEFAULT_AWS_CLI_IMAGE, ecr_repositories

    template = load_template()
    assert template["Parameters"]["AwsCliImage"]["AllowedPattern"] == AWS_CLI_IMAGE_PATTERN
    assert document["parameters"]["AwsCliImage"]["allowedPattern"] == AWS_CLI_IMAGE_PATTERN
    assert template["Parameters"]["AwsCliImage"]["Default"] == DEFAULT_AWS_CLI_IMAGE
    assert document["parameters"]["AwsCliImage"]["default"] == DEFAULT_AWS_CLI_IMAGE
    assert template["Resources"]["Setup"]["Properties"]["AwsCliImage"] == {"Ref": "AwsCliImage"}
    # the script uses the parameter, not a hard-coded image
    script = document["mainSteps"][0]["inputs"]["runCommand"][0]
    assert "AWS_CLI_IMAGE='{{ AwsCliImage }}'" in script and "aws-cli:2.22.0" not in script
    mirror = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/aws-cli/aws-cli:2.22.0"
    spec = LaunchSpec(**{**SPEC.__dict__, "aws_cli_image": mirror})
    assert spec.document_parameters()["AwsCliImage"] == [mirror]
    assert re.fullmatch(AWS_CLI_IMAGE_PATTERN, mirror)
    # the instance gets pull rights on every private repository it pulls from
    assert ecr_repositories("aws", DEFAULT_AWS_CLI_IMAGE, mirror) == [
        "arn:aws:ecr:eu-west-1:123456789012:repository/mirror/aws-cli/aws-cli"
    ]
    with pytest.raises(InvalidInput, match="AwsCliImage"):
        LaunchSpec(**{**SPEC.__dict__, "aws_cli_image": "aws-cli;reboot"})


def test_registry_listens_on_the_host_port_and_keeps_a_kms_bucket_key():
    config = base64.b64decode(SPEC.document_parameters()["ConfigBase64"][0]).decode()
    assert 'addr: "0.0.0.0:443"' in config and "encrypt: true" in config
    kms = LaunchSpec(**{**SPEC.__dict__, "bucket_kms": True, "port": 5443})
    config = base64.b64decode(kms.document_parameters()["ConfigBase64"][0]).decode()
    assert 'addr: "0.0.0.0:5443"' in config and "encrypt: false" in config
    assert LaunchSpec(**{**SPEC.__dict__, "image": "public.ecr.aws/docker/library/registry:3"}).major == "3"


def test_launch_runs_the_registry_on_the_host_network(document):
    script = script_of(document)
    run = next(line for line in script.splitlines() if "docker run -d --name registry " in line)
    assert "--network host" in run and " -p " not in run


def test_failure_reason_leads_with_the_scripts_own_line():
    from regvault.setup.launch import explain_output

    # GetCommandInvocation keeps the first 24,000 characters of stdout: the end of a long run is lost,
    # while stderr holds only the script's own lines
    stdout = "Get:1 http://archive ubuntu\n" * 2000
    stderr = "regvault: installing Docker\nregvault: unhealthy: the registry could not write a blob\n"
    reason = explain_output(stderr, stdout[:24000])
    assert reason.startswith("regvault: unhealthy: the registry could not write a blob")
    assert explain_output("", "x\nregvault: healthy: ok\n") == "regvault: healthy: ok | x"


def fake_bin(tmp_path, names):
    """Commands that record their arguments (and the order of calls) in calls.log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in names:
        path = bin_dir / name
        path.write_text(f'#!/bin/bash\necho "{name} $*" >> "{tmp_path}/calls.log"\n')
        path.chmod(0o755)
    return bin_dir


def library(document, tmp_path):
    script = script_of(document)
    for name, (value,) in SPEC.document_parameters().items():
        script = script.replace(f"{{{{ {name} }}}}", value)
    path = tmp_path / "launch.sh"
    path.write_text(script)
    return path


def test_first_boot_waits_for_cloud_init_and_takes_the_dpkg_lock_with_a_timeout(document, tmp_path):
    # Given an Ubuntu first boot: cloud-init running, apt-get present, no docker, no dnf
    bin_dir = fake_bin(tmp_path, ["cloud-init", "apt-get", "systemctl"])
    (bin_dir / "timeout").symlink_to(shutil.which("timeout"))  # the only real tool on this PATH
    path = library(document, tmp_path)
    result = subprocess.run(
        ["bash", "-c", f"REGVAULT_LIBRARY=1 source {path}; wait_for_first_boot; install_docker"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        executable="/bin/bash",
    )
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls[0] == "cloud-init status --wait"
    apt = [c for c in calls if c.startswith("apt-get")]
    assert len(apt) == 2 and all("-o DPkg::Lock::Timeout=600" in c for c in apt)
    assert calls.index(apt[0]) > 0 and calls[-1] == "systemctl enable --now docker"


JOURNAL_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:stack/registry-journal-AbCdEf"


def test_the_journal_endpoint_is_configured_with_its_secret_put_in_on_the_instance(document, tmp_path):
    journal = LaunchSpec(
        **{
            **SPEC.__dict__,
            "journal_url": "https://abc.lambda-url.eu-west-1.on.aws/",
            "journal_secret": JOURNAL_ARN,
        }
    )
    params = journal.document_parameters()
    assert params["JournalSecretId"] == [journal.journal_secret]  # the ARN: a name, never the value
    config = yaml.safe_load(base64.b64decode(params["ConfigBase64"][0]))
    endpoints = {e["name"]: e for e in config["notifications"]["endpoints"]}
    assert endpoints["regvault"]["url"] == "https://hooks.example/registry"  # the user's own webhook stays
    ours = endpoints["regvault-journal"]
    assert ours["url"] == "https://abc.lambda-url.eu-west-1.on.aws/"
    assert ours["headers"] == {"x-regvault-journal-secret": ["__REGVAULT_JOURNAL_SECRET__"]}
    assert ours["ignore"] == {"mediatypes": ["application/octet-stream"], "actions": ["pull"]}
    assert SPEC.document_parameters()["JournalSecretId"] == [""]  # without the journal: nothing
    # the script puts the value in on the instance, from the secret read with the instance role
    script = script_of(document)
    assert 'JOURNAL_VALUE=$(secret "$JOURNAL_SECRET")' in script and "__REGVAULT_JOURNAL_SECRET__" in script
    assert "printf '%s' \"$JOURNAL_VALUE\" | python3" in script
    # and does it: a config file with the placeholder gets the value, read from stdin (not argv)
    line = next(x for x in script.splitlines() if "python3 -c" in x and "REGVAULT_JOURNAL" in x)
    program = line.split("python3 -c '", 1)[1].split("' \"$DIR", 1)[0]
    path = tmp_path / "config.yml"
    path.write_text('headers:\n  x-regvault-journal-secret:\n    - "__REGVAULT_JOURNAL_SECRET__"\n')
    subprocess.run(["python3", "-c", program, str(path)], input='s3cr"et', text=True, check=True)
    # JSON-quoted in place: even a quote in the value leaves valid YAML with the exact value
    assert yaml.safe_load(path.read_text())["headers"]["x-regvault-journal-secret"] == ['s3cr"et']


def test_the_setup_passes_the_journal_to_the_launch():
    from regvault.setup.steps import SetupConfig, spec

    props = {
        "Name": "stack",
        "Region": "eu-west-1",
        "InstanceId": "i-0123456789abcdef0",
        "BucketName": "reg-bucket",
    }
    arn = JOURNAL_ARN
    config = SetupConfig.from_properties(
        {**props, "JournalUrl": "https://x.lambda-url.eu-west-1.on.aws/", "JournalSecretId": arn}
    )
    secrets = {
        "htpasswd_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:h",
        "tls_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:t",
    }
    launch = spec(config, secrets, {})
    assert launch.journal_secret == arn and launch.journal_url.startswith("https://")
    assert SetupConfig.from_properties(props).journal_url == ""
