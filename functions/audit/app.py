"""AuditFunction: the scheduled integrity audit. Reports go to the reports bucket, alerts to SNS."""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.audit.run import AuditRequest
from regvault.audit.usecase import audit_registry
from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier
from regvault.lambda_edge.events import AuditEvent, AuditSettings
from regvault.reports.scheduled import ReportsBucketCache
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = AuditSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def clients() -> tuple[S3Store, S3Store, Notifier | None]:
    registry = S3Store(SETTINGS.bucket, s3_client(max_pool_connections=32))
    reports = S3Store(SETTINGS.reports_bucket, s3_client())
    alerts = Notifier(SETTINGS.alert_topic_arn) if SETTINGS.alert_topic_arn else None
    return registry, reports, alerts


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = AuditEvent.from_event(raw_event)
    registry, reports, alerts = clients()
    outcome = audit_registry(
        registry,
        RegistryLayout(SETTINGS.root),
        AuditRequest(deep=event.deep, sample=event.sample),
        # manifest versions the previous audit read are not read again (S3 versions never change)
        cache=ReportsBucketCache.of(reports, SETTINGS.bucket, SETTINGS.root),
        sink=reports,
        alerts=alerts,
        warn=logger.info,
    )
    result = outcome.published
    assert result is not None  # a sink was given
    s = outcome.report.summary
    for name, value, unit in (
        ("FindingsError", s["errors"], MetricUnit.Count),
        ("FindingsWarning", s["warnings"], MetricUnit.Count),
        ("FindingsInfo", s["infos"], MetricUnit.Count),
        ("ObjectVersionsScanned", s["object_versions"], MetricUnit.Count),
        ("S3Requests", s["s3_requests"], MetricUnit.Count),
        ("ManifestsFromCache", s["manifests_from_cache"], MetricUnit.Count),
        ("AuditDuration", s["duration_s"], MetricUnit.Seconds),
    ):
        metrics.add_metric(name=name, unit=unit, value=value)
    logger.info("audit finished", extra={"summary": s, "reports": result["reports"]})
    return result
