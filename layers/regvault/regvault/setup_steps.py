"""The Setup state machine's steps, each a small function over AWS clients.

Inputs and outputs are plain JSON (the state machine carries them): names, ARNs and statuses only —
never a secret value, so the execution history holds none.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput
from .launch import LaunchSpec, command_status, is_managed, not_managed_message, send_launch
from .provision import SetupError, associate_profile, ensure_bucket, ensure_identity
from .registry_secrets import check_tls_secret, ensure_tls_secret, ensure_users_secret, parse_users

CHECK_INTERVAL_S = 15  # the state machine's Wait between checks


@dataclass(frozen=True)
class SetupConfig:
    name: str  # prefix for IAM and secret names (the stack name)
    region: str
    instance_id: str
    bucket: str
    root: str = ""
    recovery_days: int = 90
    image: str = "registry:2"
    port: int = 443
    tls_secret_arn: str = ""
    users: str = "admin"
    notifications_url: str = ""
    enable_ui: bool = False
    replace_existing_profile: bool = False
    launch_document: str = ""
    managed_timeout_s: int = 900
    command_timeout_s: int = 1800

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
                image=str(props.get("RegistryImage", "registry:2")),
                port=int(props.get("RegistryPort", 443)),
                tls_secret_arn=str(props.get("TlsSecretArn", "")),
                users=str(props.get("RegistryUsers", "admin")),
                notifications_url=str(props.get("NotificationsUrl", "")),
                enable_ui=flag(props.get("EnableUi", "false")),
                replace_existing_profile=flag(props.get("ReplaceExistingProfile", "false")),
                launch_document=str(props.get("LaunchDocument", "")),
                managed_timeout_s=int(props.get("ManagedTimeoutSeconds", 900)),
                command_timeout_s=int(props.get("CommandTimeoutSeconds", 1800)),
            )
        except KeyError as exc:
            raise InvalidInput(f"setup property {exc.args[0]} is missing") from None
        except ValueError as exc:
            raise InvalidInput(f"setup property has a bad value: {exc}") from None


def storage(config: SetupConfig, s3: Any) -> dict[str, Any]:
    result = ensure_bucket(s3, config.bucket, config.region, config.root, config.recovery_days)
    return {
        "bucket": result.bucket,
        "created": result.created,
        "changed": result.changed,
        "notes": result.notes,
        "recovery_window_days": result.recovery_window_days,
    }


def secrets(config: SetupConfig, sm: Any, ec2: Any) -> dict[str, Any]:
    users = ensure_users_secret(sm, f"{config.name}/registry-users", parse_users(config.users))
    if config.tls_secret_arn:
        tls = check_tls_secret(sm, config.tls_secret_arn)
    else:
        names, addresses = _instance_names(ec2, config.instance_id)
        tls = ensure_tls_secret(sm, f"{config.name}/registry-tls", names, addresses)
    return {"users_secret_arn": users.arn, "tls_secret_arn": tls.arn, "changed": users.changed + tls.changed}


def _instance_names(ec2: Any, instance_id: str) -> tuple[list[str], list[str]]:
    reservations = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    instance = reservations[0]["Instances"][0]
    names = [n for n in (instance.get("PublicDnsName"), instance.get("PrivateDnsName")) if n] + ["localhost"]
    addresses = [a for a in (instance.get("PublicIpAddress"), instance.get("PrivateIpAddress")) if a]
    return names, [*addresses, "127.0.0.1"]


def identity(config: SetupConfig, iam: Any, secret_arns: list[str]) -> dict[str, Any]:
    result = ensure_identity(iam, f"{config.name}-registry", config.bucket, config.root, secret_arns)
    return {"profile_arn": result.profile_arn, "role_name": result.role_name, "changed": result.changed}


def associate(config: SetupConfig, ec2: Any, profile_arn: str) -> dict[str, Any]:
    return {
        "association": associate_profile(
            ec2, config.instance_id, profile_arn, config.replace_existing_profile
        )
    }


def managed(config: SetupConfig, ssm: Any, attempt: int) -> dict[str, Any]:
    online = is_managed(ssm, config.instance_id)
    attempt += 1
    give_up = not online and attempt * CHECK_INTERVAL_S >= config.managed_timeout_s
    out: dict[str, Any] = {"online": online, "attempt": attempt, "give_up": give_up}
    if give_up:
        out["error"] = not_managed_message(config.instance_id, attempt * CHECK_INTERVAL_S)
    return out


def spec(config: SetupConfig, users_secret_arn: str, tls_secret_arn: str) -> LaunchSpec:
    return LaunchSpec(
        instance_id=config.instance_id,
        bucket=config.bucket,
        region=config.region,
        root=config.root,
        image=config.image,
        port=config.port,
        htpasswd_secret=users_secret_arn,
        tls_secret=tls_secret_arn,
        notifications_url=config.notifications_url or None,
        enable_ui=config.enable_ui,
    )


def launch(config: SetupConfig, ssm: Any, users_secret_arn: str, tls_secret_arn: str) -> dict[str, Any]:
    if not config.launch_document:
        raise InvalidInput("setup property LaunchDocument is missing")
    command_id = send_launch(ssm, config.launch_document, spec(config, users_secret_arn, tls_secret_arn))
    return {"command_id": command_id, "attempt": 0}


def command(config: SetupConfig, ssm: Any, command_id: str, attempt: int) -> dict[str, Any]:
    status, tail = command_status(ssm, command_id, config.instance_id)
    attempt += 1
    done = status in ("Success", "Cancelled", "TimedOut", "Failed", "Cancelling")
    out: dict[str, Any] = {
        "command_id": command_id,
        "status": status,
        "attempt": attempt,
        "done": done,
        "ok": status == "Success",
    }
    if done and status != "Success":
        out["error"] = f"the launch command ended {status} on {config.instance_id}: {tail or 'no output'}"
    elif not done and attempt * CHECK_INTERVAL_S >= config.command_timeout_s:
        out.update(
            done=True,
            ok=False,
            error=f"the launch command was still {status} after {config.command_timeout_s} s",
        )
    return out


def failure_reason(error: dict[str, Any] | None) -> str:
    """One line from a Step Functions error: the Lambda's errorMessage, or the Cause as given."""
    if not error:
        return "setup failed"
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
    except json.JSONDecodeError:
        parsed = None
    message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
    return f"{error.get('Error', 'Error')}: {message or cause or 'no detail'}".replace("\n", " ")[:1000]


def respond(
    request: dict[str, Any] | None, status: str, reason: str, data: dict[str, Any] | None = None
) -> int:
    """Answer the CloudFormation custom resource (PUT to its pre-signed ResponseURL).

    A run without a custom resource (``regvault setup``) has no request: nothing to answer (0).
    """
    if not request or not request.get("ResponseURL"):
        return 0
    if status not in ("SUCCESS", "FAILED"):
        raise SetupError(f"bad custom resource status {status}")
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason[:3000],
            "PhysicalResourceId": request.get("PhysicalResourceId")
            or f"regvault-setup-{request.get('LogicalResourceId', 'Setup')}",
            "StackId": request.get("StackId"),
            "RequestId": request.get("RequestId"),
            "LogicalResourceId": request.get("LogicalResourceId"),
            "Data": data or {},
        }
    ).encode()
    url = str(request.get("ResponseURL", ""))
    if not url.startswith(("https://", "http://127.0.0.1")):
        raise SetupError("the custom resource's ResponseURL is missing or not https")
    put = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    with urllib.request.urlopen(put, timeout=30) as response:  # noqa: S310 - CloudFormation's pre-signed URL
        return int(response.status)


def launch_action(config: SetupConfig, ssm: Any, event: dict[str, Any]) -> dict[str, Any]:
    """The launch task's three actions: is the instance managed, send the document, follow it."""
    action = event.get("action")
    if action == "managed":
        return managed(config, ssm, int(event["attempt"]))
    if action == "send":
        return launch(config, ssm, event["secrets"]["users_secret_arn"], event["secrets"]["tls_secret_arn"])
    if action == "status":
        return command(config, ssm, event["command_id"], int(event["attempt"]))
    raise InvalidInput(f"unknown launch action {action!r}")


def start(event: dict[str, Any], sfn: Any, state_machine_arn: str) -> dict[str, Any]:
    """The custom resource. Create/Update start the Setup state machine (it answers CloudFormation);
    Delete answers at once and deletes nothing: the bucket, its data, the IAM chain and secrets stay."""
    if event["RequestType"] == "Delete":
        respond(event, "SUCCESS", "nothing deleted: the registry bucket and its data are kept")
        return {"started": False}
    request = {k: v for k, v in event.items() if k != "ResourceProperties"}
    execution = sfn.start_execution(
        stateMachineArn=state_machine_arn,
        name=f"{event['RequestType']}-{event['RequestId']}"[:80],
        input=json.dumps({"request": request, "config": event["ResourceProperties"]}),
    )
    return {"started": True, "execution": execution["executionArn"]}
