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

from regvault.aws.s3 import S3Store
from regvault.aws.services import Notifier, RegistryRestarter, restore_role_ports
from regvault.lambda_edge.events import RepairEvent, RepairSettings, parse_event
from regvault.repair.usecase import RepairRequest, heal, repair_registry
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = RepairSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def ports() -> tuple[S3Store, RegistryRestarter | None, Notifier | None]:
    """The registry bucket, and what an applied change restarts and notifies (when configured)."""
    return restore_role_ports(SETTINGS.bucket, SETTINGS.restart_instance_id, SETTINGS.alert_topic_arn)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_event(RepairEvent, raw_event)
    registry, restarter, notifier = ports()
    layout = RegistryLayout(SETTINGS.root)
    if event.heal:
        result = heal(
            registry, layout, restarter=restarter, notifier=notifier, protected_tags=SETTINGS.protected_tags
        )
    else:
        request = RepairRequest(
            event.repository,
            event.tag,
            include_deleted=event.include_deleted,
            apply=event.apply,
            protected_tags=SETTINGS.protected_tags,
        )
        outcome = repair_registry(registry, layout, request, restarter=restarter, notifier=notifier)
        result = outcome.as_dict()
    summary = result["summary"]
    if result["applied"]:
        metrics.add_metric(name="ImagesRepaired", unit=MetricUnit.Count, value=summary["repairable"])
        metrics.add_metric(name="ObjectsCopied", unit=MetricUnit.Count, value=summary["copied"])
    logger.info("repair", extra={"summary": summary, "heal": event.heal, "reason": event.reason})
    return result
