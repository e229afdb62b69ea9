"""The Setup state machine's steps, each a small function over AWS clients.

Inputs and outputs are plain JSON (the state machine carries them): names, ARNs and statuses only —
never a secret value, so the execution history holds none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from regvault.errors import InvalidInput
from regvault.setup import preflight as checks
from regvault.setup.identity import IamNames, InstanceAccess, ensure_identity
from regvault.setup.launch import (
    DEFAULT_AWS_CLI_IMAGE,
    DEFAULT_IMAGE,
    DEFAULT_UI_IMAGE,
    TERMINAL,
    LaunchSpec,
    command_status,
    ecr_repositories,
    is_managed,
    not_managed_message,
    send_launch,
)
from regvault.setup.provision import SetupError, associate_profile, ensure_bucket, partition_of
from regvault.setup.secrets import check_tls_secret, ensure_tls_secret, ensure_user_secrets, parse_users

CHECK_INTERVAL_S = 15  # the state machine's Wait between checks


@dataclass(frozen=True)
class SetupConfig:
    name: str  # prefix for IAM and secret names (the stack name)
    region: str
    instance_id: str
    bucket: str
    root: str = ""
    recovery_days: int = 90
    image: str = DEFAULT_IMAGE
    ui_image: str = DEFAULT_UI_IMAGE
    aws_cli_image: str = DEFAULT_AWS_CLI_IMAGE
    port: int = 443
    tls_secret_arn: str = ""
    users: str = "admin"
    notifications_url: str = ""
    enable_ui: bool = False
    replace_existing_profile: bool = False
    launch_document: str = ""
    partition: str = ""
    allow_reboot: bool = False
    # an agent that ran without credentials backs off for up to a day: after this long without it
    # online, reboot (when allowed) or fail with the remedy
    agent_grace_s: int = 180
    managed_timeout_s: int = 900
    command_timeout_s: int = 1800
    # the guard (ProtectedTags): the bucket sends its object events to EventBridge
    bucket_events: bool = False
    # the push journal (EnableJournal): the JournalFunction's URL and its secret's ARN
    journal_url: str = ""
    journal_secret: str = ""

    def __post_init__(self) -> None:
        if not self.partition:
            object.__setattr__(self, "partition", partition_of(self.region))

    @property
    def iam_names(self) -> IamNames:
        return IamNames.of(self.name, self.region, self.partition)

    @classmethod
    def from_properties(cls, props: dict[str, Any]) -> SetupConfig:
        """From the custom resource's properties (CloudFormation passes every value as a string)."""

        def flag(value: Any) -> bool:
            return str(value).lower() in ("true", "1", "yes")

        try:
            return cls(
                name=str(props["Name"]),
                region=str(props["Region"]),
                instance_id=str(props["InstanceId"]),
                bucket=str(props["BucketName"]),
                root=str(props.get("RootDirectory", "")).strip("/"),
                recovery_days=int(props.get("RecoveryWindowDays", 90)),
                image=str(props.get("RegistryImage") or DEFAULT_IMAGE),
                ui_image=str(props.get("UiImage") or DEFAULT_UI_IMAGE),
                aws_cli_image=str(props.get("AwsCliImage") or DEFAULT_AWS_CLI_IMAGE),
                port=int(props.get("RegistryPort", 443)),
                tls_secret_arn=str(props.get("TlsSecretArn", "")),
                users=str(props.get("RegistryUsers", "admin")),
                notifications_url=str(props.get("NotificationsUrl", "")),
                enable_ui=flag(props.get("EnableUi", "false")),
                replace_existing_profile=flag(props.get("ReplaceExistingProfile", "false")),
                launch_document=str(props.get("LaunchDocument", "")),
                partition=str(props.get("Partition", "")),
                allow_reboot=flag(props.get("AllowReboot", "false")),
                agent_grace_s=int(props.get("AgentGraceSeconds", 180)),
                managed_timeout_s=int(props.get("ManagedTimeoutSeconds", 900)),
                command_timeout_s=int(props.get("CommandTimeoutSeconds", 1800)),
                bucket_events=flag(props.get("BucketEvents", "false")),
                journal_url=str(props.get("JournalUrl", "")),
                journal_secret=str(props.get("JournalSecretId", "")),
            )
        except KeyError as exc:
            raise InvalidInput(f"setup property {exc.args[0]} is missing") from None
        except ValueError as exc:
            raise InvalidInput(f"setup property has a bad value: {exc}") from None


def preflight(config: SetupConfig, ec2: Any, ssm: Any, s3: Any, sm: Any) -> dict[str, Any]:
    """The first state: read-only checks; every problem at once, before anything is written."""
    return checks.run(config, ec2, ssm, s3, sm).as_dict()


def storage(config: SetupConfig, s3: Any) -> dict[str, Any]:
    result = ensure_bucket(
        s3, config.bucket, config.region, config.root, config.recovery_days, events=config.bucket_events
    )
    return {
        "bucket": result.bucket,
        "created": result.created,
        "changed": result.changed,
        "notes": result.notes,
        "recovery_window_days": result.recovery_window_days,
        "kms_key": result.kms_key,
    }


def secrets(config: SetupConfig, sm: Any, ec2: Any) -> dict[str, Any]:
    users = ensure_user_secrets(sm, config.name, parse_users(config.users))
    if config.tls_secret_arn:
        tls = check_tls_secret(sm, config.tls_secret_arn)
    else:
        names, addresses = _instance_names(ec2, config.instance_id)
        tls = ensure_tls_secret(sm, f"{config.name}/registry-tls", names, addresses)
    return {
        "users_secret_arn": users.users_arn,
        "htpasswd_secret_arn": users.htpasswd_arn,
        "tls_secret_arn": tls.arn,
        "tls_kms_key": tls.kms_key,
        "changed": users.changed + tls.changed,
    }


def _instance_names(ec2: Any, instance_id: str) -> tuple[list[str], list[str]]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    instance = reservations[0]["Instances"][0]
    names = [n for n in (instance.get("PublicDnsName"), instance.get("PrivateDnsName")) if n] + ["localhost"]
    addresses = [a for a in (instance.get("PublicIpAddress"), instance.get("PrivateIpAddress")) if a]
    return names, [*addresses, "127.0.0.1"]


def identity(
    config: SetupConfig, iam: Any, secrets: dict[str, Any], storage: dict[str, Any]
) -> dict[str, Any]:
    """The instance reads the htpasswd and TLS secrets (never the users' plaintext passwords)."""
    instance_secrets = (secrets["htpasswd_secret_arn"], secrets["tls_secret_arn"]) + (
        (config.journal_secret,) if config.journal_url and config.journal_secret else ()
    )
    access = InstanceAccess(
        bucket=config.bucket,
        root=config.root,
        partition=config.partition,
        region=config.region,
        account=str(secrets["htpasswd_secret_arn"]).split(":")[4],
        secret_arns=instance_secrets,
        secret_keys=tuple(k for k in [secrets.get("tls_kms_key")] if k),
        bucket_key=storage.get("kms_key"),
        ecr_repository=ecr_repositories(
            config.partition,
            config.image,
            config.aws_cli_image,
            *([config.ui_image] if config.enable_ui else []),
        )
        or None,
    )
    result = ensure_identity(iam, config.iam_names, access)
    return {"profile_arn": result.profile_arn, "role_name": result.role_name, "changed": result.changed}


def associate(config: SetupConfig, ec2: Any, profile_arn: str) -> dict[str, Any]:
    return {
        "association": associate_profile(
            ec2, config.instance_id, profile_arn, config.replace_existing_profile
        )
    }


def managed(config: SetupConfig, ssm: Any, state: dict[str, Any]) -> dict[str, Any]:
    """One check of the SSM agent after the association.

    An agent that ran without credentials backs off exponentially (up to about a day), so it may not
    register for hours after the profile arrives. After ``agent_grace_s`` without it online: reboot
    the instance once when ``AllowReboot`` is on (the agent registers at boot), else fail at once with
    the remedies; after a reboot, wait up to ``managed_timeout_s``."""
    attempt = int(state.get("attempt", 0)) + 1
    rebooted = bool(state.get("rebooted", False))
    out: dict[str, Any] = {"online": False, "attempt": attempt, "rebooted": rebooted, "reboot": False}
    out["give_up"] = False
    if is_managed(ssm, config.instance_id):
        return {**out, "online": True}
    waited = attempt * CHECK_INTERVAL_S
    if not rebooted and waited >= config.agent_grace_s:
        if config.allow_reboot:
            return {**out, "reboot": True}
        return {**out, "give_up": True, "error": agent_remedy(config.instance_id, waited)}
    if waited >= config.managed_timeout_s:
        return {**out, "give_up": True, "error": not_managed_message(config.instance_id, waited)}
    return out


def agent_remedy(instance_id: str, waited: int) -> str:
    return (
        f"instance {instance_id} is not managed by SSM {waited} s after its instance profile was "
        "associated. An SSM agent that ran without credentials backs off for up to a day. Do one of: "
        "restart the agent on the instance (sudo systemctl restart amazon-ssm-agent; on Ubuntu "
        "snap.amazon-ssm-agent.amazon-ssm-agent), reboot the instance, redeploy with AllowReboot=true "
        "(the setup then reboots it), or enable Default Host Management Configuration in Systems Manager; "
        "then redeploy. Also check that the instance reaches the SSM endpoints"
    )


def reboot(config: SetupConfig, ec2: Any, state: dict[str, Any]) -> dict[str, Any]:
    """Reboot the instance once (AllowReboot): its SSM agent registers at boot with the new profile."""
    if not config.allow_reboot:
        raise SetupError("refusing to reboot: AllowReboot is false")
    ec2.reboot_instances(InstanceIds=[config.instance_id])
    return {**state, "reboot": False, "rebooted": True}


def spec(config: SetupConfig, secrets: dict[str, Any], storage: dict[str, Any]) -> LaunchSpec:
    return LaunchSpec(
        instance_id=config.instance_id,
        bucket=config.bucket,
        region=config.region,
        root=config.root,
        image=config.image,
        port=config.port,
        htpasswd_secret=str(secrets["htpasswd_secret_arn"]),
        tls_secret=str(secrets["tls_secret_arn"]),
        notifications_url=config.notifications_url or None,
        journal_url=config.journal_url or None,
        journal_secret=config.journal_secret,
        enable_ui=config.enable_ui,
        ui_image=config.ui_image,
        aws_cli_image=config.aws_cli_image,
        bucket_kms=bool(storage.get("kms_key")),
    )


def launch(config: SetupConfig, ssm: Any, secrets: dict[str, Any], storage: dict[str, Any]) -> dict[str, Any]:
    if not config.launch_document:
        raise InvalidInput("setup property LaunchDocument is missing")
    command_id = send_launch(ssm, config.launch_document, spec(config, secrets, storage))
    return {"command_id": command_id, "attempt": 0}


def command(config: SetupConfig, ssm: Any, command_id: str, attempt: int) -> dict[str, Any]:
    status, tail = command_status(ssm, command_id, config.instance_id)
    attempt += 1
    done = status in TERMINAL
    out: dict[str, Any] = {
        "command_id": command_id,
        "status": status,
        "attempt": attempt,
        "done": done,
        "ok": status == "Success",
    }
    if done and status != "Success":
        out["error"] = f"{tail or 'no output'} (the launch command ended {status} on {config.instance_id})"
    elif not done and attempt * CHECK_INTERVAL_S >= config.command_timeout_s:
        out.update(
            done=True,
            ok=False,
            error=f"the launch command was still {status} after {config.command_timeout_s} s",
        )
    return out


def launch_action(config: SetupConfig, ssm: Any, event: dict[str, Any], ec2: Any = None) -> dict[str, Any]:
    """The launch task's actions: is the instance managed, reboot it, send the document, follow it."""
    action = event.get("action")
    if action == "managed":
        return managed(config, ssm, dict(event.get("state") or {}))
    if action == "reboot":
        return reboot(config, ec2, dict(event.get("state") or {}))
    if action == "send":
        return launch(config, ssm, event["secrets"], event.get("storage") or {})
    if action == "status":
        return command(config, ssm, event["command_id"], int(event["attempt"]))
    raise InvalidInput(f"unknown launch action {action!r}")
