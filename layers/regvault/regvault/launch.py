"""Launching the registry on its instance through SSM Run Command.

The launch Lambda renders ``config.yml`` with ``registry_config`` (no secrets in it: the instance role
supplies S3 credentials, and htpasswd/TLS are files the script writes from Secrets Manager), waits until
the instance is SSM-managed, sends the template's launch document with *names* of secrets only, and
waits for the command, whose last step is the health check on the instance itself.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .aws import ClientError, error_code
from .errors import InvalidInput
from .provision import SetupError
from .registry_config import RegistrySettings, render

CONTAINER_PATHS = {"2": "/etc/docker/registry/config.yml", "3": "/etc/distribution/config.yml"}
ON_INSTANCE = "/etc/regvault"


@dataclass(frozen=True)
class LaunchSpec:
    instance_id: str
    bucket: str
    region: str
    root: str
    image: str = "registry:2"
    port: int = 443
    htpasswd_secret: str = ""
    tls_secret: str = ""
    notifications_url: str | None = None
    enable_ui: bool = False

    def __post_init__(self) -> None:
        if not self.image.startswith(("registry:2", "registry:3")):
            raise InvalidInput("RegistryImage must be registry:2 or registry:3 (optionally with a patch tag)")
        if not 1 <= self.port <= 65535:
            raise InvalidInput("RegistryPort must be 1-65535")
        if not self.htpasswd_secret or not self.tls_secret:
            raise InvalidInput("the launch needs the htpasswd and TLS secret names")

    @property
    def major(self) -> str:
        return self.image.split(":", 1)[1][0]

    def config_yaml(self) -> str:
        """What the registry runs with on the instance: instance role, TLS and htpasswd files."""
        return render(
            RegistrySettings(
                bucket=self.bucket,
                region=self.region,
                root=self.root,
                listen="0.0.0.0:5000",
                htpasswd_path=f"{ON_INSTANCE}/htpasswd",
                tls_certificate=f"{ON_INSTANCE}/tls.crt",
                tls_key=f"{ON_INSTANCE}/tls.key",
                notifications_url=self.notifications_url,
            )
        )

    def document_parameters(self) -> dict[str, list[str]]:
        """SendCommand parameters: names and settings only — never a secret value."""
        return {
            "RegistryImage": [self.image],
            "RegistryPort": [str(self.port)],
            "ConfigPath": [CONTAINER_PATHS[self.major]],
            "ConfigBase64": [base64.b64encode(self.config_yaml().encode()).decode()],
            "HtpasswdSecretId": [self.htpasswd_secret],
            "TlsSecretId": [self.tls_secret],
            "Region": [self.region],
            "EnableUi": ["true" if self.enable_ui else "false"],
        }


def is_managed(ssm: Any, instance_id: str) -> bool:
    """True when the instance's SSM agent reports Online."""
    info = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}]).get(
        "InstanceInformationList", []
    )
    return bool(info) and info[0].get("PingStatus") == "Online"


def not_managed_message(instance_id: str, waited: float) -> str:
    return (
        f"instance {instance_id} is not managed by SSM after {int(waited)} s: check that the "
        "SSM agent runs (preinstalled on Amazon Linux 2023 and Ubuntu AMIs), that the instance "
        "reaches the SSM endpoints (internet or VPC endpoints), and that its profile has "
        "AmazonSSMManagedInstanceCore"
    )


def wait_until_managed(
    ssm: Any,
    instance_id: str,
    timeout: float = 600,
    interval: float = 10,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Wait until the SSM agent on the instance is online; a clear error when it never shows."""
    deadline = clock() + timeout
    while not is_managed(ssm, instance_id):
        if clock() >= deadline:
            raise SetupError(not_managed_message(instance_id, timeout))
        sleep(interval)


def send_launch(ssm: Any, document: str, spec: LaunchSpec) -> str:
    response = ssm.send_command(
        InstanceIds=[spec.instance_id],
        DocumentName=document,
        Comment="regvault: launch the registry",
        Parameters=spec.document_parameters(),
        TimeoutSeconds=1800,
    )
    return str(response["Command"]["CommandId"])


TERMINAL = {"Success", "Cancelled", "TimedOut", "Failed", "Cancelling"}


def command_status(ssm: Any, command_id: str, instance_id: str) -> tuple[str, str]:
    """(status, last lines of output) of the command on the instance; 'Pending' while not yet known."""
    try:
        out = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except ClientError as exc:
        if error_code(exc) == "InvocationDoesNotExist":
            return "Pending", ""
        raise
    text = (out.get("StandardErrorContent") or out.get("StandardOutputContent") or "").strip()
    return str(out["Status"]), "\n".join(text.splitlines()[-5:])
