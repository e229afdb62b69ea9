"""GuardFunction: S3's object events (through EventBridge) on tags' ``current/link`` in; a protected tag
(REGVAULT_PROTECTED_TAGS) that moved or was deleted is put back, and SNS is told. Its role reads, and
writes under the registry's root, and deletes nothing."""

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier
from regvault.errors import InvalidInput
from regvault.guard.patterns import Protection
from regvault.guard.usecase import guard_event
from regvault.journal.record import recent_actor_lookup
from regvault.lambda_edge.events import GuardSettings, S3ObjectEvent, parse_event
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = GuardSettings.from_env()  # validated at cold start
PROTECTION = Protection.parse(SETTINGS.protected_tags)


@lru_cache(maxsize=1)
def ports() -> tuple[S3Store, Notifier | None]:
    notifier = Notifier(SETTINGS.alert_topic_arn) if SETTINGS.alert_topic_arn else None
    return S3Store(SETTINGS.bucket, s3_client(max_pool_connections=16)), notifier


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_event(S3ObjectEvent, raw_event)
    if event.detail.bucket.name != SETTINGS.bucket:
        raise InvalidInput(f"an event of bucket {event.detail.bucket.name!r}, not {SETTINGS.bucket!r}")
    store, notifier = ports()
    actor_of = None
    if SETTINGS.reports_bucket:  # who tried it, from the push journal (the registry's notifications)
        reports = S3Store(SETTINGS.reports_bucket, s3_client())
        actor_of = recent_actor_lookup(reports, SETTINGS.bucket, SETTINGS.root, datetime.now(UTC))
    decision = guard_event(
        store,
        RegistryLayout(SETTINGS.root),
        PROTECTION,
        event.detail.object.key,
        event.detail.object.version_id,
        notifier=notifier,
        actor_of=actor_of,
    )
    if decision.action == "reverted":
        metrics.add_metric(name="ProtectedTagsPutBack", unit=MetricUnit.Count, value=1)
    elif decision.action == "unrecoverable":
        metrics.add_metric(name="ProtectedTagsNotPutBack", unit=MetricUnit.Count, value=1)
    logger.info("guard", extra=decision.as_dict())
    return decision.as_dict()
