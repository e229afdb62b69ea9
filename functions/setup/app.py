"""The Setup state machine's Lambda tasks and the custom resource that starts it. Thin edges over
regvault.setup.steps; each task returns names, ARNs and statuses only — never a secret value."""

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.clients import client
from regvault.setup import custom_resource as cr
from regvault.setup import steps

logger = Logger()


def _config(event: dict[str, Any]) -> steps.SetupConfig:
    return steps.SetupConfig.from_properties(event["config"])


def _urls() -> cr.ResponseUrls | None:
    bucket = os.environ.get("SETUP_RESPONSES_BUCKET")
    return cr.ResponseUrls(client("s3"), bucket) if bucket else None


@logger.inject_lambda_context
def preflight(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = steps.preflight(
        _config(event), client("ec2"), client("ssm"), client("s3"), client("secretsmanager")
    )
    logger.info("preflight", extra={"problems": result["problems"], "notes": result["notes"]})
    return result


@logger.inject_lambda_context
def storage(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.storage(_config(event), client("s3"))


@logger.inject_lambda_context
def secrets(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.secrets(_config(event), client("secretsmanager"), client("ec2"))


@logger.inject_lambda_context
def identity(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.identity(_config(event), client("iam"), event["secrets"], event["storage"])


@logger.inject_lambda_context
def associate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.associate(_config(event), client("ec2"), event["identity"]["profile_arn"])


@logger.inject_lambda_context
def launch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return steps.launch_action(_config(event), client("ssm"), event, client("ec2"))


@logger.inject_lambda_context
def respond(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = cr.answer(event, _urls())
    logger.info("setup finished", extra=result)
    return result


@logger.inject_lambda_context
def trigger(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The custom resource: Create/Update start the state machine, which answers CloudFormation once the
    registry is healthy (or failed); rollbacks and Delete answer at once (regvault.setup.custom_resource)."""
    arn = os.environ["SETUP_STATE_MACHINE_ARN"]
    result = cr.start(
        event, cr.Trigger(client("stepfunctions"), arn, _urls(), client("cloudformation"), client("ssm"))
    )
    logger.info("custom resource", extra=result)
    return result
