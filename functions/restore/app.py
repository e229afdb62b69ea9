"""RestoreFunction: plan (default) or apply a restore. Copy-forward only; the role cannot delete."""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier, RegistryRestarter, restore_role_ports
from regvault.lambda_edge.events import RestoreEvent, RestoreSettings, parse_event
from regvault.restore.targets import parse_time
from regvault.restore.usecase import RestoreRequest, restore_images
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = RestoreSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def ports() -> tuple[S3Store, RegistryRestarter | None, Notifier | None]:
    """The registry bucket, and what an applied change restarts and notifies (when configured)."""
    return restore_role_ports(SETTINGS.bucket, SETTINGS.restart_instance_id, SETTINGS.alert_topic_arn)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_event(RestoreEvent, raw_event)
    request = RestoreRequest(
        event.repository,
        event.tag,
        to=event.to,
        previous=event.previous,
        at=parse_time(event.at) if event.at else None,
        apply=event.apply,
    )
    registry, restarter, notifier = ports()
    outcome = restore_images(
        registry, RegistryLayout(SETTINGS.root), request, restarter=restarter, notifier=notifier
    )
    result = outcome.document
    result.update(applied=outcome.applied, copied=outcome.copied, registry_restart=outcome.registry_restart)
    if outcome.applied:
        metrics.add_metric(name="TagsRestored", unit=MetricUnit.Count, value=len(outcome.plan.targets))
        metrics.add_metric(name="ObjectsCopied", unit=MetricUnit.Count, value=outcome.copied)
    logger.info(
        "restore",
        extra={"targets": result["targets"], "applied": result["applied"], "copied": result["copied"]},
    )
    return result
