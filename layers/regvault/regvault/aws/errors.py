"""botocore failures as domain errors (``regvault.errors``), each with a message that says what to do.

Code outside ``regvault.aws`` never sees a botocore exception class. Where it expects some failures of
a raw client call (a resource not found, already there), it names their codes with ``expected`` and
catches ``regvault.errors.AwsCallFailed``; every other failure goes up unchanged (the Setup state
machine retries on the name ``ClientError``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ResponseStreamingError,
)

from regvault.errors import (
    AccessDenied,
    AwsCallFailed,
    BucketNotFound,
    CredentialsMissing,
    EndpointUnreachable,
    ObjectMissing,
    StorageError,
)

logger = logging.getLogger(__name__)


class BodyCutShort(StorageError):
    """The response body ended before its Content-Length: read the object again."""


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (None for anything else)."""
    return _code(exc) if isinstance(exc, ClientError) else None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def expected(*codes: str) -> Iterator[None]:
    """An AWS failure with one of ``codes`` becomes ``AwsCallFailed(code, message)``; others go up as
    they are."""
    try:
        yield
    except ClientError as exc:
        code = _code(exc)
        if code not in codes:
            raise
        raise AwsCallFailed(code, str(exc.response.get("Error", {}).get("Message", ""))) from exc


def unless_missing(call: Any, missing_code: str, empty: Any) -> Any:
    """``call()``, or ``empty`` if it fails with ``missing_code`` (a setting not configured)."""
    try:
        with expected(missing_code):
            return call()
    except AwsCallFailed:
        return empty


@contextmanager
def failing_as(what: str) -> Iterator[None]:
    """Any botocore failure becomes ``StorageError("<what>: <the failure>")``."""
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"{what}: {exc}") from None


@contextmanager
def s3_errors(bucket: str, client: Any, operation: str, key: str | None = None) -> Iterator[None]:
    """botocore failures of S3 ``operation`` (on ``key``, or on the bucket) as domain errors."""
    try:
        yield
    except ClientError as exc:
        raise translate(exc, bucket, operation, key) from None
    except EndpointConnectionError:
        raise EndpointUnreachable(
            f"cannot reach S3 at {client.meta.endpoint_url}: "
            "check --endpoint-url / AWS_ENDPOINT_URL and that the service is running"
        ) from None
    except (IncompleteReadError, ResponseStreamingError) as exc:
        raise BodyCutShort(f"S3 {operation} of {key or bucket}: the body was cut short ({exc})") from None
    except NoCredentialsError:
        raise CredentialsMissing(
            "no AWS credentials found: set AWS_PROFILE/--profile or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY"
        ) from None
    except BotoCoreError as exc:
        raise StorageError(f"S3 {operation} failed: {exc}") from None


def translate(exc: ClientError, bucket: str, operation: str, key: str | None) -> Exception:
    """The domain error for an S3 error response."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    where = f"s3://{bucket}/{key}" if key else f"bucket {bucket!r}"
    if code == "NoSuchBucket" or (status == 404 and key is None):
        return BucketNotFound(f"bucket {bucket!r} does not exist (check --bucket / REGVAULT_BUCKET)")
    if code in ("NoSuchKey", "NoSuchVersion", "404") or (status == 404 and key):
        return ObjectMissing(f"{where} has no such object or version")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
        return CredentialsMissing(f"S3 rejected the credentials ({code}): refresh or fix them")
    if code in ("AccessDenied", "AllAccessDisabled", "403") or status == 403:
        return AccessDenied(
            f"access denied for s3:{operation} on {where}: check the credentials in use and "
            "that their policy allows it"
        )
    logger.error("S3 %s on %s failed: %s %s", operation, where, code, error.get("Message"))
    return StorageError(
        f"S3 {operation} on {where} failed: {code or status} {error.get('Message', '')}".strip()
    )
