"""Launching the registry on its instance through SSM Run Command.

The launch Lambda renders ``config.yml`` with ``registry_config`` (no secrets in it: the instance role
supplies S3 credentials, and htpasswd/TLS are files the script writes from Secrets Manager), waits until
the instance is SSM-managed, sends the template's launch document with *names* of secrets only, and
waits for the command, whose last step is the health check on the instance itself.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from regvault.aws.errors import expected
from regvault.errors import AwsCallFailed, InvalidInput
from regvault.journal.record import PLACEHOLDER, SECRET_HEADER
from regvault.setup.registry_config import RegistrySettings, render

CONTAINER_PATHS = {"2": "/etc/docker/registry/config.yml", "3": "/etc/distribution/config.yml"}
ON_INSTANCE = "/etc/regvault"
DEFAULT_IMAGE = "public.ecr.aws/docker/library/registry:2"
DEFAULT_UI_IMAGE = "docker.io/konradkleine/docker-registry-frontend:v2"
# the script reads secrets (and logs in to a private ECR) with this image's aws CLI: mirror it too
DEFAULT_AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.22.0"
# Where images may come from: ECR Public, a private ECR repository (a mirror, for instances without
# internet egress), or Docker Hub. The template's AllowedPattern and the launch document's
# allowedPattern are these very strings (a test compares them).
_SOURCES = (
    r"(public\.ecr\.aws/[a-z0-9][a-z0-9._/-]*/"
    r"|[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/([a-z0-9][a-z0-9._-]*/)*"
    r"|(docker\.io/)?([a-z0-9][a-z0-9_-]*/)?)"
)
REGISTRY_IMAGE_PATTERN = rf"^{_SOURCES}registry:[23][A-Za-z0-9._-]{{0,126}}$"
UI_IMAGE_PATTERN = rf"^{_SOURCES}[a-z0-9][a-z0-9._-]*:[A-Za-z0-9._-]{{1,128}}$"
AWS_CLI_IMAGE_PATTERN = UI_IMAGE_PATTERN
_PRIVATE_ECR = re.compile(
    r"^(?P<account>[0-9]{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?/(?P<repo>.+):[^:]+$"
)


def ecr_repository_arn(image: str, partition: str) -> str | None:
    """The private ECR repository an image comes from (the instance then needs pull rights), else None."""
    match = _PRIVATE_ECR.match(image)
    if not match:
        return None
    return f"arn:{partition}:ecr:{match['region']}:{match['account']}:repository/{match['repo']}"


def ecr_repositories(partition: str, *images: str) -> list[str]:
    """ARNs of the private ECR repositories these images come from (the instance pulls them)."""
    return sorted({arn for arn in (ecr_repository_arn(image, partition) for image in images) if arn})


@dataclass(frozen=True)
class LaunchSpec:
    instance_id: str
    bucket: str
    region: str
    root: str
    image: str = DEFAULT_IMAGE
    port: int = 443
    htpasswd_secret: str = ""
    tls_secret: str = ""
    notifications_url: str | None = None
    # regvault's push journal: the JournalFunction's URL and the secret (its ARN) the header carries
    journal_url: str | None = None
    journal_secret: str = ""
    enable_ui: bool = False
    ui_image: str = DEFAULT_UI_IMAGE
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE
    bucket_kms: bool = False  # the bucket encrypts with SSE-KMS by default: keep its key

    def __post_init__(self) -> None:
        if not re.fullmatch(REGISTRY_IMAGE_PATTERN, self.image):
            raise InvalidInput(
                "RegistryImage must be registry:2 or registry:3 (optionally a patch tag) from ECR Public, "
                f"a private ECR repository or Docker Hub, e.g. {DEFAULT_IMAGE}"
            )
        if not re.fullmatch(UI_IMAGE_PATTERN, self.ui_image):
            raise InvalidInput(
                "UiImage must be an image reference with a tag (ECR Public, ECR or Docker Hub)"
            )
        if not re.fullmatch(AWS_CLI_IMAGE_PATTERN, self.aws_cli_image):
            raise InvalidInput(
                f"AwsCliImage must be an image reference with a tag (ECR Public, ECR or Docker Hub), "
                f"e.g. {DEFAULT_AWS_CLI_IMAGE}"
            )
        if not 1 <= self.port <= 65535:
            raise InvalidInput("RegistryPort must be 1-65535")
        if not self.htpasswd_secret or not self.tls_secret:
            raise InvalidInput("the launch needs the htpasswd and TLS secret names")

    @property
    def major(self) -> str:
        return self.image.rsplit(":", 1)[1][0]

    def config_yaml(self) -> str:
        """What the registry runs with on the instance: instance role, TLS and htpasswd files."""
        return render(
            RegistrySettings(
                bucket=self.bucket,
                region=self.region,
                root=self.root,
                # host networking: the S3 driver reaches the instance's credentials even with
                # IMDSv2 and a hop limit of 1 (a bridged container is one hop further)
                listen=f"0.0.0.0:{self.port}",
                htpasswd_path=f"{ON_INSTANCE}/htpasswd",
                tls_certificate=f"{ON_INSTANCE}/tls.crt",
                tls_key=f"{ON_INSTANCE}/tls.key",
                notifications_url=self.notifications_url,
                journal_url=self.journal_url,
                # the secret itself goes in on the instance (the launch script), never through SSM
                journal_headers={SECRET_HEADER: PLACEHOLDER} if self.journal_url else None,
                # encrypt: true makes distribution send AES256 on every write, overriding a bucket's
                # SSE-KMS default; with SSE-KMS the bucket's own key applies instead
                encrypt=not self.bucket_kms,
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
            "JournalSecretId": [self.journal_secret if self.journal_url else ""],
            "Region": [self.region],
            "EnableUi": ["true" if self.enable_ui else "false"],
            "UiImage": [self.ui_image],
            "AwsCliImage": [self.aws_cli_image],
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
    """(status, what went wrong) of the command on the instance; 'Pending' while not yet known.

    GetCommandInvocation keeps only the *first* 24,000 characters of stdout and 8,000 of stderr, so
    the tail of a long run (apt, docker pull) may be missing. The launch script sends its own
    ``regvault:`` lines, and only those, to stderr: the last of them leads the answer."""
    try:
        with expected("InvocationDoesNotExist"):
            out = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id)
    except AwsCallFailed:
        return "Pending", ""
    return str(out["Status"]), explain_output(
        out.get("StandardErrorContent") or "", out.get("StandardOutputContent") or ""
    )


def explain_output(stderr: str, stdout: str) -> str:
    """The script's last own line first, then the last lines of output for context."""
    ours = [line for line in (stderr + "\n" + stdout).splitlines() if line.startswith("regvault:")]
    tail = [line for line in stdout.strip().splitlines()[-3:] if line not in ours[-1:]]
    lead = ours[-1] if ours else ""
    return " | ".join(part for part in (lead, " / ".join(tail)) if part)
