"""The Setup state machine's Lambda tasks and the custom resource that starts it. Thin edges over
regvault.setup_steps; each task returns names, ARNs and statuses only — never a secret value."""

import json
import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault import setup_steps as steps
from regvault.aws import client

logger = Logger()


def _config(event: dict[str, Any]) -> steps.SetupConfig:
    return steps.SetupConfig.from_properties(event["config"])


@logger.inject_lambda_context
def storage(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.storage(_config(event), client("s3"))


@logger.inject_lambda_context
def secrets(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.secrets(_config(event), client("secretsmanager"), client("ec2"))


@logger.inject_lambda_context
def identity(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    arns = [event["secrets"]["users_secret_arn"], event["secrets"]["tls_secret_arn"]]
    return steps.identity(_config(event), client("iam"), arns)


@logger.inject_lambda_context
def associate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.associate(_config(event), client("ec2"), event["identity"]["profile_arn"])


@logger.inject_lambda_context
def launch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    config, ssm = _config(event), client("ssm")
    action = event["action"]
    if action == "managed":
        return steps.managed(config, ssm, int(event["attempt"]))
    if action == "send":
        return steps.launch(
            config, ssm, event["secrets"]["users_secret_arn"], event["secrets"]["tls_secret_arn"]
        )
    if action == "status":
        return steps.command(config, ssm, event["command_id"], int(event["attempt"]))
    raise ValueError(f"unknown launch action {action!r}")


@logger.inject_lambda_context
def respond(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    reason = (
        "registry launched and healthy"
        if event["status"] == "SUCCESS"
        else steps.failure_reason(event.get("error"))
    )
    status = steps.respond(event.get("request"), event["status"], reason, event.get("data"))
    logger.info(
        "setup finished", extra={"status": event["status"], "reason": reason, "response_http": status}
    )
    return {"status": event["status"], "reason": reason}


@logger.inject_lambda_context
def trigger(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The custom resource: Create/Update start the state machine, which answers CloudFormation when the
    registry is healthy (or failed). Delete answers at once and deletes nothing: bucket, data, IAM chain
    and secrets stay."""
    if event["RequestType"] == "Delete":
        steps.respond(event, "SUCCESS", "nothing deleted: the registry bucket and its data are kept")
        return {"started": False}

    name = f"{event['RequestType']}-{event['RequestId']}"[:80]
    request = {k: v for k, v in event.items() if k != "ResourceProperties"}
    execution = client("stepfunctions").start_execution(
        stateMachineArn=os.environ["SETUP_STATE_MACHINE_ARN"],
        name=name,
        input=json.dumps({"request": request, "config": event["ResourceProperties"]}),
    )
    logger.info("setup started", extra={"execution": execution["executionArn"]})
    return {"started": True, "execution": execution["executionArn"]}
