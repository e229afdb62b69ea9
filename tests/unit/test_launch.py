import base64
import json
import shutil
import subprocess

import boto3
import pytest
import yaml

from regvault.errors import InvalidInput
from regvault.launch import LaunchSpec, command_status, send_launch, wait_until_managed
from regvault.provision import SetupError

from .builders import ROOT, CfnLoader

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
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
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


def test_wait_until_managed_and_its_timeout():
    slept = []
    ssm = FakeSsmInventory(online_after=2)
    wait_until_managed(ssm, "i-1", timeout=60, interval=5, sleep=slept.append, clock=lambda: 0.0)
    assert ssm.calls == 3 and slept == [5, 5]
    times = iter(range(0, 1000, 10))
    with pytest.raises(SetupError, match="not managed by SSM after 60 s: check that the SSM agent runs"):
        wait_until_managed(
            FakeSsmInventory(None),
            "i-1",
            timeout=60,
            interval=10,
            sleep=lambda _: None,
            clock=lambda: float(next(times)),
        )


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
        status, _ = command_status(ssm, command_id, SPEC.instance_id)
        assert status in ("Success", "Pending", "InProgress")
