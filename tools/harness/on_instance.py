"""The launch on an emulated instance, end to end: the ECR Public stand-in and an instance with its own
Docker Engine (``harness.instance``), registered with the emulator so that the launch document's
SSM command runs there (``harness.ssm_runner``); and the registry the script started, as the rest of
the harness talks to it (``LaunchedRegistry``: the same face as ``harness.registry.RegistryServer``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.emulator import ACCESS_KEY, SECRET_KEY, S3Emulator
from harness.instance import TLS_NAME, EmulatedInstance, PublicEcr
from harness.processes import HarnessError, Supervisor, free_port, wait_for_http
from harness.setup_local import LAUNCH_DOCUMENT, create_launch_document, launch_instance
from regvault.setup.launch import CONTAINER_PATHS, LaunchSpec
from regvault.setup.secrets import ensure_tls_secret, ensure_user_secrets

PRIVATE_ECR_HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def s3_overrides(emulator: S3Emulator) -> dict[str, Any]:
    """What the instance's registry needs to reach the emulator (on EC2: nothing; the region and the
    instance role). Over the emulator's TLS listener when it has one: the setup's TLS-only bucket
    policy then holds, as on AWS."""
    endpoint = emulator.tls_endpoint_url or emulator.endpoint_url
    return {
        "regionendpoint": endpoint,
        "accesskey": ACCESS_KEY,
        "secretkey": SECRET_KEY,
        "secure": endpoint.startswith("https:"),
        "forcepathstyle": True,  # registry:3 would use BUCKET.127.0.0.1 otherwise; 2.8 ignores it
    }


class InstanceHost:
    """An emulated instance for the emulator's EC2 instance ``instance_id`` (call ``register`` once
    the id is known). ``close`` stops what it started (the supervisor stops the rest)."""

    def __init__(
        self,
        supervisor: Supervisor,
        workdir: Path,
        emulator: S3Emulator,
        docker_running: bool = True,
        progress: bool = False,
    ) -> None:
        self.emulator = emulator
        self.ecr = PublicEcr(supervisor, workdir, progress=progress)
        # the aws-cli stand-in reaches the emulator (Secrets Manager, ECR) with its keys: see stand_ins
        self.ecr.aws_cli_for(emulator.endpoint_url, ACCESS_KEY, SECRET_KEY)
        # the stand-in answers as a private ECR registry too (a mirror, for instances without egress)
        self.instance = EmulatedInstance(
            supervisor,
            workdir,
            self.ecr,
            docker_running=docker_running,
            hosts=[f"{self.ecr.address} {PRIVATE_ECR_HOST}"],
        )

    def register(self, instance_id: str) -> None:
        spec = {**self.instance.registration(), "s3": s3_overrides(self.emulator)}
        (self.emulator.instances_dir / f"{instance_id}.json").write_text(json.dumps(spec))

    def close(self) -> None:
        self.instance.close()


def wait_for_command(ssm: Any, command_id: str, instance_id: str, timeout: float = 300) -> dict[str, Any]:
    """GetCommandInvocation until the command ends (what the setup's wait step does)."""
    deadline = time.monotonic() + timeout
    while True:
        out = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
        if out["Status"] not in ("Pending", "InProgress", "Delayed", "Cancelling"):
            return dict(out)
        if time.monotonic() > deadline:
            raise HarnessError(f"command {command_id} still {out['Status']} after {timeout} s")
        time.sleep(0.25)


@dataclass(frozen=True)
class Launch:
    """What a launch on the instance needs and gives: the command's spec, the user to log in with, the
    registry's certificate."""

    spec: LaunchSpec
    user: str
    password: str
    certificate: str

    def send(self, ssm: Any, timeout: float = 240, **changes: Any) -> dict[str, Any]:
        """SendCommand (the launch document, this spec with ``changes``) and wait for its end."""
        spec = replace(self.spec, **changes)
        command = ssm.send_command(
            InstanceIds=[spec.instance_id],
            DocumentName=LAUNCH_DOCUMENT,
            Parameters=spec.document_parameters(),
            TimeoutSeconds=600,
        )["Command"]["CommandId"]
        return wait_for_command(ssm, command, spec.instance_id, timeout=timeout)

    def registry(self, host: InstanceHost, workdir: Path) -> LaunchedRegistry:
        config = CONTAINER_PATHS[self.spec.major]
        return LaunchedRegistry(
            host, workdir, self.spec.port, self.user, self.password, self.certificate, config
        )


def prepare_launch(
    emulator: S3Emulator, host: InstanceHost, bucket: str, user: str = "admin", **spec: Any
) -> Launch:
    """Everything the setup would have made before its launch command, the direct way: the users and
    TLS secrets (the certificate also names ``registry.regvault.test`` / ``::1``), an EC2 instance
    launched with a profile and registered with ``host``, the launch document. ``spec``: LaunchSpec
    fields (image, journal_url, ...)."""
    sm = emulator.client("secretsmanager")
    users = ensure_user_secrets(sm, "regvault", [user])
    tls = ensure_tls_secret(sm, "regvault/registry-tls", ["localhost", TLS_NAME], ["127.0.0.1", "::1"])
    emulator.client("iam").create_instance_profile(InstanceProfileName="regvault-instance")
    instance_id = launch_instance(emulator.client("ec2"), profile="regvault-instance")
    host.register(instance_id)
    create_launch_document(emulator.client("ssm"))
    launch_spec = LaunchSpec(
        **{
            "instance_id": instance_id,
            "bucket": bucket,
            "region": "us-east-1",
            "root": "",
            "port": free_port(),
            "htpasswd_secret": users.htpasswd_arn,
            "tls_secret": tls.arn,
            **spec,
        }
    )
    passwords = json.loads(sm.get_secret_value(SecretId=users.users_arn)["SecretString"])["passwords"]
    certificate = json.loads(sm.get_secret_value(SecretId=tls.arn)["SecretString"])["certificate"]
    return Launch(launch_spec, user, passwords[user], certificate)


class LaunchedRegistry:
    """The registry container the launch script started, with ``RegistryServer``'s face: address,
    user and password (a user of the setup's users secret), TLS (the setup's certificate in
    ``cert_dir``), ``restart`` (``docker restart``) and ``garbage_collect`` (the image's own binary,
    ``docker exec``)."""

    def __init__(
        self,
        host: InstanceHost,
        workdir: Path,
        port: int,
        user: str,
        password: str,
        certificate: str,
        config_path: str,
    ) -> None:
        self.host = host
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.user, self.password = user, password
        self.tls, self.scheme = True, "https"
        self.cert_dir = workdir / "launched-certs"
        self.cert_dir.mkdir(exist_ok=True)
        (self.cert_dir / "ca.crt").write_text(certificate)
        self.container_config = config_path

    def restart(self) -> None:
        self.host.instance.docker("restart", "registry")
        wait_for_http(
            f"https://{self.address}/v2/",
            lambda status: status == 401,
            None,
            "the launched registry after a restart",
            lambda: str(self.host.instance.docker("logs", "--tail", "20", "registry", check=False).stderr),
            timeout=60,
        )

    def garbage_collect(self, *, delete_untagged: bool = False, dry_run: bool = False) -> str:
        argv = ["exec", "registry", "/usr/bin/registry", "garbage-collect"]
        argv += ["--delete-untagged"] * delete_untagged + ["--dry-run"] * dry_run
        out = self.host.instance.docker(*argv, self.container_config, timeout=600)
        return str(out.stdout) + str(out.stderr)
