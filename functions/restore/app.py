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
from regvault.restore.apply import apply_plan, parse_time, plan_restore
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = RestoreSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def store() -> S3Store:
    return S3Store(SETTINGS.bucket, s3_client(max_pool_connections=32))


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_event(RestoreEvent, raw_event)
    layout = RegistryLayout(SETTINGS.root)
    at = parse_time(event.at) if event.at else None
    plan, _ = plan_restore(
        store(), layout, event.repository, event.tag, to=event.to, previous=event.previous, at=at
    )
    result = plan.as_dict(layout)
    result.update(applied=False, copied=0, registry_restart=None)
    if event.apply and plan.restorable:
        applied = apply_plan(store(), plan)
        result.update(applied=True, copied=applied.copied)
        metrics.add_metric(name="TagsRestored", unit=MetricUnit.Count, value=len(plan.targets))
        metrics.add_metric(name="ObjectsCopied", unit=MetricUnit.Count, value=applied.copied)
        if plan.brings_blobs_back and SETTINGS.restart_instance_id:
            result["registry_restart"] = RegistryRestarter(SETTINGS.restart_instance_id).restart()
        if SETTINGS.alert_topic_arn:
            Notifier(SETTINGS.alert_topic_arn).publish(*plan.notice(applied.copied))
    logger.info(
        "restore",
        extra={"targets": result["targets"], "applied": result["applied"], "copied": result["copied"]},
    )
    return result
