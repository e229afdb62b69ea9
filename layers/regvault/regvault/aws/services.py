"""SNS, SSM and Step Functions, as the Lambda handlers and the CLI use them."""

from __future__ import annotations

import json
from typing import Any

from regvault.aws.clients import client as new_client
from regvault.aws.errors import failing_as
from regvault.errors import InvalidInput


class Notifier:
    """Publishes one-line notices to an SNS topic."""

    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self.client = client or new_client("sns")

    def publish(self, subject: str, message: str) -> None:
        with failing_as(f"could not publish to {self.topic_arn}"):
            self.client.publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=message)


class RegistryRestarter:
    """Restarts the registry container on its instance through SSM Run Command.

    After blobs come back, a registry running the in-memory blob-descriptor cache may still answer
    for them from memory (distribution #3743); a restart clears it. The command names no secret.
    """

    CONTAINER = "registry"

    def __init__(self, instance_id: str, client: Any = None) -> None:
        self.instance_id = instance_id
        self.client = client or new_client("ssm")

    def restart(self) -> str:
        with failing_as(f"could not restart the registry on {self.instance_id}"):
            response = self.client.send_command(
                InstanceIds=[self.instance_id],
                DocumentName="AWS-RunShellScript",
                Comment="regvault: restart the registry after a restore",
                Parameters={"commands": [f"docker restart {self.CONTAINER}"]},
            )
        return str(response["Command"]["CommandId"])


class FunctionInvoker:
    """Invokes another Lambda function asynchronously (the audit handing over to the RepairFunction)."""

    def __init__(self, function_name: str, client: Any = None) -> None:
        self.function_name = function_name
        self.client = client or new_client("lambda")

    def invoke_async(self, payload: dict[str, Any]) -> int:
        with failing_as(f"could not invoke {self.function_name}"):
            response = self.client.invoke(
                FunctionName=self.function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
            )
        return int(response.get("StatusCode", 0))


class StateMachine:
    """Starts and follows executions of the Setup state machine (``regvault setup``)."""

    def __init__(self, arn: str, client: Any) -> None:
        self.arn = arn
        if not arn.startswith("arn:") or arn.count(":") < 6:
            raise InvalidInput(f"not a state machine ARN: {arn[:80]!r}")
        self.client = client

    def last_input(self) -> dict[str, Any]:
        with failing_as(f"cannot read {self.arn}"):
            executions = self.client.list_executions(stateMachineArn=self.arn, maxResults=20)["executions"]
        for execution in sorted(executions, key=lambda e: e["startDate"], reverse=True):
            text = self.client.describe_execution(executionArn=execution["executionArn"]).get("input")
            if text:
                return dict(json.loads(text))
        raise InvalidInput(f"{self.arn} has never run: deploy the stack first (sam deploy)")

    def start(self, name: str, document: dict[str, Any]) -> str:
        response = self.client.start_execution(
            stateMachineArn=self.arn, name=name, input=json.dumps(document)
        )
        return str(response["executionArn"])

    def status(self, execution_arn: str) -> dict[str, Any]:
        return dict(self.client.describe_execution(executionArn=execution_arn))


def reporting_ports(
    bucket: str, reports_bucket: str, topic_arn: str | None
) -> tuple[Any, Any, Notifier | None]:
    """What the audit and GC Lambdas talk to: the registry bucket (a wide connection pool for parallel
    reads), the reports bucket, and the alerts topic when one is configured."""
    from regvault.aws.clients import s3_client
    from regvault.aws.s3 import S3Store

    registry = S3Store(bucket, s3_client(max_pool_connections=32))
    reports = S3Store(reports_bucket, s3_client())
    return registry, reports, Notifier(topic_arn) if topic_arn else None


def read_secret(secret_id: str, client: Any = None) -> str:
    """A secret's string value (the journal endpoint's shared secret), read once at cold start."""
    sm = client or new_client("secretsmanager")
    with failing_as(f"could not read the secret {secret_id}"):
        return str(sm.get_secret_value(SecretId=secret_id)["SecretString"])


def restore_role_ports(
    bucket: str, restart_instance_id: str | None, alert_topic_arn: str | None
) -> tuple[Any, RegistryRestarter | None, Notifier | None]:
    """What the RestoreFunction and the RepairFunction (the same role) write with: the registry bucket's
    store, and the registry restart and SNS notice when the stack configured them."""
    from regvault.aws.clients import s3_client
    from regvault.aws.s3 import S3Store

    restarter = RegistryRestarter(restart_instance_id) if restart_instance_id else None
    notifier = Notifier(alert_topic_arn) if alert_topic_arn else None
    return S3Store(bucket, s3_client(max_pool_connections=32)), restarter, notifier
