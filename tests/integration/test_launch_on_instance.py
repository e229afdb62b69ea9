"""The launch document's script, run for real: SSM SendCommand to an emulated instance with its own
Docker Engine (harness.instance), the registry image pulled from the ECR Public stand-in, secrets
read by the aws-cli image, the registry container writing to the emulator over TLS.

Every command's output (StandardOutputContent / StandardErrorContent, what SSM keeps) is checked for
the journal secret: it never appears, failed runs included.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.emulator import S3Emulator
from harness.instance import TLS_NAME, engine_unavailable, harness_ca
from harness.on_instance import PRIVATE_ECR_HOST, InstanceHost, Launch, prepare_launch
from harness.processes import Supervisor, free_port
from harness.stand_ins import V3_BINARY
from regvault.setup.launch import LaunchSpec, explain_output

pytestmark = pytest.mark.skipif(engine_unavailable() is not None, reason=f"{engine_unavailable()}")
PROBE = "docker/registry/v2/repositories/regvault-healthcheck/_manifests/tags/probe/current/link"


@dataclass
class World:
    emulator: S3Emulator
    host: InstanceHost
    setup: Launch
    journal_secret: str
    outputs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def spec(self) -> LaunchSpec:
        return self.setup.spec

    def launch(self, **changes: Any) -> dict[str, Any]:
        out = self.setup.send(self.emulator.client("ssm"), **changes)
        self.outputs.append(out)
        # what SSM keeps of the command never holds the journal secret, whatever happened
        for part in ("StandardOutputContent", "StandardErrorContent"):
            assert self.journal_secret not in out[part], part
        return out

    def probe_versions(self, root: str = "") -> int:
        key = f"{root}/{PROBE}" if root else PROBE
        s3 = self.emulator.client("s3")
        return len(s3.list_object_versions(Bucket=self.spec.bucket, Prefix=key).get("Versions", []))

    def container(self) -> dict[str, Any]:
        out = self.host.instance.docker("inspect", "registry").stdout
        return dict(json.loads(out)[0])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("launch")
    with Supervisor(workdir) as supervisor:
        emulator = S3Emulator(supervisor, tls=harness_ca())
        host = InstanceHost(supervisor, workdir, emulator)
        try:
            s3, sm = emulator.client("s3"), emulator.client("secretsmanager")
            bucket = f"regvault-launch-{secrets.token_hex(3)}"
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
            journal = secrets.token_urlsafe(30)
            journal_arn = sm.create_secret(Name="regvault/registry-journal", SecretString=journal)["ARN"]
            # the registry's notifications go nowhere here (a closed loopback port); the header matters
            journal_url = f"http://127.0.0.1:{free_port()}/journal"
            setup = prepare_launch(
                emulator, host, bucket, user="alice", journal_url=journal_url, journal_secret=journal_arn
            )
            yield World(emulator, host, setup, journal)
        finally:
            host.close()


def test_first_launch_is_healthy_and_a_second_run_converges(world):
    # When the setup's command runs on the instance
    first = world.launch()
    # Then it succeeded with the script's own lines on stderr, the health probe in the bucket
    assert first["Status"] == "Success" and first["ResponseCode"] == 0, first["StandardOutputContent"][-2000:]
    assert "regvault: healthy:" in first["StandardErrorContent"]
    assert all(line.startswith("regvault:") for line in first["StandardErrorContent"].splitlines())
    assert world.probe_versions() == 1
    container = world.container()
    assert container["State"]["Running"] and container["HostConfig"]["RestartPolicy"]["Name"] == "always"
    assert container["HostConfig"]["NetworkMode"] == "host"
    assert container["Config"]["Image"] == "public.ecr.aws/docker/library/registry:2"
    config = world.host.instance.read("/etc/regvault/config.yml")
    mode = world.host.instance.sh(["stat", "-c", "%a", "/etc/regvault/config.yml"]).stdout.strip()
    # the journal header in the written config is the secret, byte for byte; root-only
    [hook] = [
        e for e in yaml.safe_load(config)["notifications"]["endpoints"] if e["name"] == "regvault-journal"
    ]
    assert hook["headers"]["x-regvault-journal-secret"] == [world.journal_secret] and mode == "600"
    assert not Path("/etc/regvault").exists(), "the instance's /etc reached the machine's"

    # When it runs again with the same parameters
    again = world.launch()
    # Then one container, the same config, a second probe write
    assert again["Status"] == "Success"
    names = world.host.instance.docker("ps", "-a", "--format", "{{.Names}}").stdout.split()
    assert names == ["registry"]
    assert world.host.instance.read("/etc/regvault/config.yml") == config
    assert world.probe_versions() == 2


def test_seed_client_docker_login_push_pull_and_tls_really_verified(world, tmp_path):
    instance, port = world.host.instance, world.spec.port
    if world.container()["State"]["Running"] is not True:
        world.launch()
    # registry.regvault.test is ::1 in the instance: dockerd verifies TLS for it (not for 127.0.0.0/8)
    refused = instance.docker(
        "login",
        "-u",
        world.setup.user,
        "--password-stdin",
        f"{TLS_NAME}:{port}",
        input=world.setup.password,
        check=False,
    )
    assert refused.returncode != 0 and "x509" in refused.stderr
    instance.trust(f"{TLS_NAME}:{port}", world.setup.certificate)
    ok = instance.docker(
        "login", "-u", world.setup.user, "--password-stdin", f"{TLS_NAME}:{port}", input=world.setup.password
    )
    assert "Login Succeeded" in ok.stdout
    # an image built FROM scratch, several layers, pushed and pulled by tag and by digest
    context = tmp_path / "ctx"
    context.mkdir()
    for n in range(3):
        (context / f"layer{n}.bin").write_bytes(secrets.token_bytes(64 * 1024))
    (context / "Dockerfile").write_text(
        "FROM scratch\n" + "".join(f"COPY layer{n}.bin /\n" for n in range(3)) + 'CMD ["/layer0.bin"]\n'
    )
    ref = f"{TLS_NAME}:{port}/team/seed:1"
    instance.docker_build(context, ref)
    pushed = instance.docker("push", ref).stdout
    digest = next(w for w in pushed.split() if w.startswith("sha256:"))
    instance.docker("rmi", ref)
    instance.docker("pull", ref)
    instance.docker("pull", f"{TLS_NAME}:{port}/team/seed@{digest}")
    (tmp_path / "ca.pem").write_text(world.setup.certificate)
    curl = [
        "curl",
        "-sS",
        "--cacert",
        str(tmp_path / "ca.pem"),
        "-u",
        f"{world.setup.user}:{world.setup.password}",
    ]
    base = f"https://localhost:{port}/v2"
    catalog = subprocess.run([*curl, f"{base}/_catalog"], capture_output=True, text=True, check=True)
    assert "team/seed" in json.loads(catalog.stdout)["repositories"]
    tags = subprocess.run([*curl, f"{base}/team/seed/tags/list"], capture_output=True, text=True, check=True)
    assert json.loads(tags.stdout)["tags"] == ["1"]


def test_installed_but_stopped_docker_is_started(world):
    # Given Docker installed on the instance but not running
    world.host.instance.systemctl("stop", "docker")
    assert world.host.instance.docker("info", check=False).returncode != 0
    # When the launch runs
    out = world.launch()
    # Then the script started it (the instance's systemctl) and the registry is healthy
    assert out["Status"] == "Success", out["StandardOutputContent"][-2000:]
    assert "regvault: starting Docker" in out["StandardErrorContent"]


def test_a_changed_config_relaunches_the_container(world):
    before = world.container()["Id"]
    out = world.launch(root="relaunched")
    assert out["Status"] == "Success"
    assert world.container()["Id"] != before
    config = yaml.safe_load(world.host.instance.read("/etc/regvault/config.yml"))
    assert config["storage"]["s3"]["rootdirectory"].strip("/") == "relaunched"
    assert world.probe_versions("relaunched") == 1


def test_failures_lead_with_their_own_line_and_never_show_the_journal_secret(world):
    sm = world.emulator.client("secretsmanager")
    # a bucket that is not there: the registry starts (and prints its journal header), the write fails
    out = world.launch(bucket="regvault-no-such-bucket-x")
    assert out["Status"] == "Failed" and out["ResponseCode"] == 1
    reason = explain_output(out["StandardErrorContent"], out["StandardOutputContent"])
    assert reason.startswith("regvault: unhealthy: the registry could not write a blob to the bucket"), reason
    assert (
        "x-regvault-journal-secret:[<journal secret>]" in out["StandardOutputContent"]
    )  # redacted, not gone
    # a health-check password the registry refuses
    original = sm.get_secret_value(SecretId=world.spec.htpasswd_secret)["SecretString"]
    wrong = {**json.loads(original), "healthcheck_password": "not-the-password"}
    sm.put_secret_value(SecretId=world.spec.htpasswd_secret, SecretString=json.dumps(wrong))
    try:
        out = world.launch()
    finally:
        sm.put_secret_value(SecretId=world.spec.htpasswd_secret, SecretString=original)
    reason = explain_output(out["StandardErrorContent"], out["StandardOutputContent"])
    assert out["Status"] == "Failed"
    assert reason.startswith("regvault: unhealthy: the registry refuses the health-check user's password"), (
        reason
    )
    # an image that cannot be pulled
    out = world.launch(image="public.ecr.aws/docker/library/registry:2.99.0")
    reason = explain_output(out["StandardErrorContent"], out["StandardOutputContent"])
    assert out["Status"] == "Failed"
    assert reason.startswith("regvault: could not pull public.ecr.aws/docker/library/registry:2.99.0"), reason
    # and the instance recovers with the right parameters
    assert world.launch()["Status"] == "Success"
    assert len(world.outputs) >= 4 and all(world.journal_secret not in json.dumps(o) for o in world.outputs)


@pytest.mark.skipif(not V3_BINARY.exists(), reason=f"no registry v3 binary at {V3_BINARY}")
def test_registry_3_launches_through_the_script(world):
    out = world.launch(image="public.ecr.aws/docker/library/registry:3")
    assert out["Status"] == "Success", out["StandardOutputContent"][-2000:]
    container = world.container()
    assert container["Config"]["Image"] == "public.ecr.aws/docker/library/registry:3"
    mounts = {m["Destination"] for m in container["Mounts"]}
    assert "/etc/distribution/config.yml" in mounts


def test_a_private_ecr_mirror_is_logged_in_to_before_the_first_secret_read(world):
    # Given the registry image mirrored into a private ECR (the instance has no internet egress)
    image = f"{PRIVATE_ECR_HOST}/docker/library/registry:2"
    out = world.launch(image=image)
    # Then the script logs in with the instance role (aws-cli image, ECR's GetAuthorizationToken) first
    assert out["Status"] == "Success", out["StandardOutputContent"][-2000:]
    lines = out["StandardErrorContent"].splitlines()
    assert lines[0] == f"regvault: logging in to {PRIVATE_ECR_HOST} (private ECR) with the instance role"
    assert lines[1] == "regvault: fetching the htpasswd and TLS secrets with the instance role"
    assert world.container()["Config"]["Image"] == image
    # and an aws-cli image that is itself a private mirror, on an instance without its own aws CLI, is
    # refused with the remedy before anything else happens
    out = world.launch(aws_cli_image=f"{PRIVATE_ECR_HOST}/aws-cli/aws-cli:2.22.0")
    reason = explain_output(out["StandardErrorContent"], out["StandardOutputContent"])
    assert out["Status"] == "Failed"
    assert reason.startswith("regvault: AwsCliImage is in a private ECR and this instance has no aws CLI"), (
        reason
    )
