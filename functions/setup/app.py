"""The Setup state machine's Lambda tasks and the custom resource that starts it. Thin edges over
regvault.setup_steps; each task returns names, ARNs and statuses only — never a secret value."""

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
    return steps.launch_action(_config(event), client("ssm"), event)


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
    """The custom resource: Create/Update start the state machine, which answers CloudFormation once the
    registry is healthy (or failed). Delete answers at once and deletes nothing."""
    result = steps.start(event, client("stepfunctions"), os.environ["SETUP_STATE_MACHINE_ARN"])
    logger.info("custom resource", extra=result)
    return result
