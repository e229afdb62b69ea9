"""AuditFunction: the scheduled integrity audit, here or, for a registry the last audit found at or above
DISTRIBUTED_AUDIT_THRESHOLD object versions, handed to the AuditStateMachine (functions/audit_map).
Reports go to the reports bucket, alerts to SNS."""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.audit.usecase import audit_registry, choose_mode
from regvault.aws.clients import client
from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier, StateMachine, reporting_ports
from regvault.journal.record import Journal, read_journal
from regvault.lambda_edge.events import AuditEvent, AuditSettings
from regvault.lambda_edge.healing import hand_over_to_repair
from regvault.reports.scheduled import ReportsBucketCache, last_audit_size, summary_metrics
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = AuditSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def clients() -> tuple[S3Store, S3Store, Notifier | None]:
    return reporting_ports(SETTINGS.bucket, SETTINGS.reports_bucket, SETTINGS.alert_topic_arn)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = AuditEvent.from_event(raw_event)
    registry, reports, alerts = clients()
    machine = SETTINGS.audit_state_machine_arn
    last = last_audit_size(reports, SETTINGS.bucket, SETTINGS.root)
    mode = choose_mode(last, SETTINGS.distributed_threshold, machine is not None)
    if mode.distributed and machine is not None:
        name = f"audit-{context.aws_request_id}"[:80]
        execution = StateMachine(machine, client("stepfunctions")).start(name, event.model_dump())
        logger.info(
            "audit handed to the state machine", extra={"reason": mode.reason, "execution": execution}
        )
        return {"mode": "distributed", "reason": mode.reason, "execution": execution}
    outcome = audit_registry(
        registry,
        RegistryLayout(SETTINGS.root),
        SETTINGS.audit_request(event.deep, event.sample, journal_of(reports)),
        # manifest versions the previous audit read are not read again (S3 versions never change)
        cache=ReportsBucketCache.of(reports, SETTINGS.bucket, SETTINGS.root),
        sink=reports,
        alerts=alerts,
        warn=logger.info,
    )
    assert outcome.published is not None  # a sink was given
    for name, value, unit in summary_metrics(outcome.report.summary):
        metrics.add_metric(name=name, unit=MetricUnit[unit], value=value)
    logger.info("audit finished", extra={"summary": outcome.report.summary, "mode": mode.reason})
    healing = hand_over_to_repair(outcome.report, SETTINGS.repair_function, logger.info)
    return {"mode": "single", "reason": mode.reason, **outcome.published, "healing": healing}


def journal_of(reports: S3Store) -> Journal | None:
    """EnableJournal: the push journal, for the tag writes no registry push explains."""
    if not SETTINGS.journal:
        return None
    return Journal(read_journal(reports, SETTINGS.bucket, SETTINGS.root))
