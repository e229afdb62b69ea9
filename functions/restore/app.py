"""RestoreFunction: plan (default) or apply a restore. Copy-forward only; the role cannot delete."""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier, RegistryRestarter
from regvault.lambda_edge.events import RestoreEvent, RestoreSettings, parse_event
from regvault.restore.targets import parse_time
from regvault.restore.usecase import RestoreRequest, restore_images
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = RestoreSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def store() -> S3Store:
    return S3Store(SETTINGS.bucket, s3_client(max_pool_connections=32))


@lru_cache(maxsize=1)
def registry_ports() -> tuple[RegistryRestarter | None, Notifier | None]:
    """What an applied restore restarts and notifies, when the stack configured them."""
    restarter = RegistryRestarter(SETTINGS.restart_instance_id) if SETTINGS.restart_instance_id else None
    notifier = Notifier(SETTINGS.alert_topic_arn) if SETTINGS.alert_topic_arn else None
    return restarter, notifier


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
    restarter, notifier = registry_ports()
    outcome = restore_images(
        store(), RegistryLayout(SETTINGS.root), request, restarter=restarter, notifier=notifier
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
