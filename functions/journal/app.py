"""JournalFunction: the registry's notifications endpoint (a Lambda Function URL). Requests without the
shared secret header are refused; pushes and deletes of manifests are kept in the reports bucket
(``journal/<bucket>/<root>/YYYY/MM/DD/<batch>.json``), pulls and blob uploads are not."""

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.aws.services import read_secret
from regvault.lambda_edge.events import JournalSettings
from regvault.lambda_edge.journal import handle_notification

logger = Logger()
tracer = Tracer()
metrics = Metrics()
SETTINGS = JournalSettings.from_env()  # validated at cold start


@lru_cache(maxsize=1)
def ports() -> tuple[S3Store, str]:
    return S3Store(SETTINGS.reports_bucket, s3_client()), read_secret(SETTINGS.journal_secret_arn)


@logger.inject_lambda_context
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    sink, secret = ports()
    answer = handle_notification(event, secret, sink, SETTINGS.bucket, SETTINGS.root, datetime.now(UTC))
    if answer.status == 200:
        metrics.add_metric(name="JournalBatches", unit=MetricUnit.Count, value=1 if answer.written else 0)
        logger.info("journal", extra={"written": answer.written})
    else:  # one line; never the body or the headers (the secret travels in a header)
        logger.warning(f"journal request refused: {answer.status} {answer.message}")
    return answer.response()
