"""GcFunction: garbage collection on an opt-in schedule (plan-only unless GC_MODE=apply), or on demand
(``{"apply": true, "delete_untagged": true}``, ``{"undo": "<run id>", "apply": true}``). Delete
markers only: the role has no s3:DeleteObjectVersion. Reports to the reports bucket, a notice to SNS."""

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier, reporting_ports
from regvault.garbage.usecase import GcRequest, collect_garbage, publish_gc, undo_garbage
from regvault.lambda_edge.events import GcEvent, GcSettings
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = GcSettings.from_env()  # validated at cold start
LAYOUT = RegistryLayout(SETTINGS.root)


@lru_cache(maxsize=1)
def clients() -> tuple[S3Store, S3Store, Notifier | None]:
    return reporting_ports(SETTINGS.bucket, SETTINGS.reports_bucket, SETTINGS.alert_topic_arn)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = GcEvent.from_event(raw_event)
    registry, reports, notifier = clients()
    apply = event.apply if event.apply is not None else SETTINGS.mode == "apply"
    if event.undo:
        doc = undo_garbage(registry, LAYOUT, event.undo, apply=apply)
    else:
        untagged = event.delete_untagged if event.delete_untagged is not None else SETTINGS.delete_untagged
        request = GcRequest(delete_untagged=untagged, grace=timedelta(hours=event.grace_hours))
        doc = collect_garbage(registry, LAYOUT, request, apply=apply).as_dict()
        metrics.add_metric(
            name="GcObjectsSwept" if apply else "GcObjectsPlanned",
            unit=MetricUnit.Count,
            value=len(doc["objects"]),
        )
    doc["report"] = publish_gc(doc, reports, SETTINGS.bucket, SETTINGS.root, datetime.now(UTC))
    if apply and notifier is not None:
        what = f"undo of {event.undo}" if event.undo else f"gc run {doc['run_id']}"
        notifier.publish(f"regvault: {what} applied on {SETTINGS.bucket}", f"Report: {doc['report']}\n")
    logger.info("gc", extra={"applied": apply, "summary": doc.get("summary"), "report": doc["report"]})
    return {k: v for k, v in doc.items() if k != "objects"} | {"objects": len(doc["objects"])}
