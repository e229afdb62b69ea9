"""RepairFunction: self-healing for the scheduled audit (AutoRepair), or a repair on demand.

``{"heal": true}`` (what the audit sends): repair every recoverable broken live image in place, restart
the registry when blobs came back, audit again, notify before and after. Otherwise a plan (or, with
``"apply": true``, a repair) of the scope given. The restore role's rights: copy forward, never delete.
"""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier, RegistryRestarter
from regvault.lambda_edge.events import RepairEvent, RepairSettings, parse_event
from regvault.repair.usecase import RepairRequest, heal, repair_registry
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = RepairSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def store() -> S3Store:
    return S3Store(SETTINGS.bucket, s3_client(max_pool_connections=32))


@lru_cache(maxsize=1)
def registry_ports() -> tuple[RegistryRestarter | None, Notifier | None]:
    restarter = RegistryRestarter(SETTINGS.restart_instance_id) if SETTINGS.restart_instance_id else None
    notifier = Notifier(SETTINGS.alert_topic_arn) if SETTINGS.alert_topic_arn else None
    return restarter, notifier


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_event(RepairEvent, raw_event)
    restarter, notifier = registry_ports()
    layout = RegistryLayout(SETTINGS.root)
    if event.heal:
        result = heal(
            store(), layout, restarter=restarter, notifier=notifier, protected_tags=SETTINGS.protected_tags
        )
    else:
        request = RepairRequest(
            event.repository,
            event.tag,
            include_deleted=event.include_deleted,
            apply=event.apply,
            protected_tags=SETTINGS.protected_tags,
        )
        outcome = repair_registry(store(), layout, request, restarter=restarter, notifier=notifier)
        result = outcome.as_dict()
    summary = result["summary"]
    if result["applied"]:
        metrics.add_metric(name="ImagesRepaired", unit=MetricUnit.Count, value=summary["repairable"])
        metrics.add_metric(name="ObjectsCopied", unit=MetricUnit.Count, value=summary["copied"])
    logger.info("repair", extra={"summary": summary, "heal": event.heal, "reason": event.reason})
    return result
