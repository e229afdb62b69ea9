"""CatalogFunction: what `regvault ls` shows, for `sam remote invoke` (events/catalog-*.json)."""

from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.images.usecase import catalog
from regvault.lambda_edge.events import CatalogEvent, Settings, parse_event
from regvault.storage.layout import RegistryLayout

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = Settings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def store() -> S3Store:
    return S3Store(SETTINGS.bucket, s3_client())


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(raw_event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = parse_event(CatalogEvent, raw_event)
    document = catalog(store(), RegistryLayout(SETTINGS.root), event.repository).document
    metrics.add_metric(name="TagsListed", unit=MetricUnit.Count, value=document["summary"]["tags"])
    logger.info("listed registry", extra={"summary": document["summary"]})
    return document
