"""The AuditStateMachine's Lambdas: ``worker`` plans and lists one key range per invocation (a part in the
reports bucket); ``reduce`` merges the parts, runs the rules and publishes the report."""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.audit.distributed import ShardItem, audit_shard, plan_run
from regvault.audit.run import AuditRequest
from regvault.audit.usecase import reduce_audit_run
from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier, reporting_ports
from regvault.lambda_edge import events
from regvault.lambda_edge.healing import hand_over_to_repair
from regvault.reports.scheduled import ReportsBucketCache, summary_metrics
from regvault.storage.inventory import repository_bounds
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = events.AuditSettings.from_env()  # validated at cold start
LAYOUT = RegistryLayout(SETTINGS.root)


@lru_cache(maxsize=1)
def clients() -> tuple[S3Store, S3Store, Notifier | None]:
    return reporting_ports(SETTINGS.bucket, SETTINGS.reports_bucket, SETTINGS.alert_topic_arn)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
def worker(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    registry, reports, _ = clients()
    if isinstance(raw_event, dict) and raw_event.get("step") == "plan":
        plan = events.parse_event(events.AuditPlanEvent, raw_event)
        folders = repository_bounds(registry, LAYOUT.repositories_prefix)  # a range per repository folder
        doc = plan_run(LAYOUT, plan.run, SETTINGS.audit_shards, repositories=folders)
        return {**doc, "options": plan.options.model_dump()}
    event = events.parse_event(events.AuditShardEvent, raw_event)
    return audit_shard(registry, LAYOUT, event.run, ShardItem.parse(event.item), AuditRequest(), reports)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def reduce(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = events.parse_event(events.AuditReduceEvent, raw_event)
    registry, reports, alerts = clients()
    outcome = reduce_audit_run(
        registry,
        LAYOUT,
        event.model_dump(include={"run", "shards", "started_at"}),
        SETTINGS.audit_request(event.options.deep, event.options.sample),
        parts=reports,
        cache=ReportsBucketCache.of(reports, SETTINGS.bucket, SETTINGS.root),
        sink=reports,
        alerts=alerts,
        warn=logger.info,
    )
    for name, value, unit in summary_metrics(outcome.report.summary):
        metrics.add_metric(name=name, unit=MetricUnit[unit], value=value)
    logger.info("audit finished", extra={"summary": outcome.report.summary, "run": event.run})
    healing = hand_over_to_repair(outcome.report, SETTINGS.repair_function, logger.info)
    return {"mode": "distributed", "run": event.run, **(outcome.published or {}), "healing": healing}
