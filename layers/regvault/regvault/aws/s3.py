"""AWS adapters — the only module that imports boto3/botocore.

Clients use botocore's adaptive retry mode with bounded attempts; every HTTP request is counted
(retries included) so reports can state what a run cost. botocore failures become domain errors
(``regvault.errors``) whose message says what to do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ProfileNotFound,
    ResponseStreamingError,
)
from botocore.parsers import ResponseParserFactory
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from regvault.errors import (
    AccessDenied,
    BucketNotFound,
    CredentialsMissing,
    EndpointUnreachable,
    InvalidInput,
    ObjectMissing,
    ObjectTooLarge,
    StorageError,
)
from regvault.storage.store import DEFAULT_PAGE_SIZE, BucketPosture, VersionRecord

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
MAX_SINGLE_COPY = 5 * 1024**3  # S3's CopyObject limit
STREAM_ATTEMPTS = 4  # reads of a body that broke mid-stream


class BodyCutShort(StorageError):
    """The response body ended before its Content-Length: read the object again."""


class RequestCounter:
    """Counts HTTP requests per S3 API operation (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: Counter[str] = Counter()

    def __call__(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.by_operation[operation] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_operation.values())


def parse_timestamp(value: str) -> datetime:
    """S3's timestamps: ISO 8601 in listings (fast path), RFC 1123 in headers (botocore's parser)."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed
    except (TypeError, ValueError):
        pass
    result: datetime = botocore_parse_timestamp(value)
    return result


# --- ListObjectVersions pages parsed directly ---------------------------------------------------
#
# botocore's generic XML parser walks the service model for every element: about 100 µs per listed
# version, most of the audit's own CPU on a big bucket. A page is flat and fixed in shape, so it is
# parsed here with ElementTree; anything unexpected (an element we do not know, an error) goes to
# botocore's parser, which stays the reference (tests compare both on random listings).

_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_TOP_TEXT = (
    "KeyMarker",
    "VersionIdMarker",
    "NextKeyMarker",
    "NextVersionIdMarker",
    "Name",
    "Prefix",
    "Delimiter",
    "EncodingType",
)
_EMPTY_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></ListVersionsResult>'
)


class _Unexpected(Exception):
    pass


def _text(element: Any) -> str:
    return element.text or ""


def _bool(element: Any) -> bool:
    return _text(element) == "true"


def _owner(element: Any) -> dict[str, str]:
    out = {}
    for child in element:
        name = child.tag[len(_S3_NS) :]
        if name not in ("DisplayName", "ID"):
            raise _Unexpected(name)
        out[name] = _text(child)
    return out


def _entry(element: Any, timestamp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = child.tag[len(_S3_NS) :]
        if name in ("ETag", "StorageClass", "Key", "VersionId", "ChecksumType"):
            out[name] = _text(child)
        elif name == "Size":
            out[name] = int(_text(child))
        elif name == "IsLatest":
            out[name] = _bool(child)
        elif name == "LastModified":
            out[name] = timestamp(_text(child))
        elif name == "Owner":
            out[name] = _owner(child)
        elif name == "ChecksumAlgorithm":
            out.setdefault(name, []).append(_text(child))
        else:
            raise _Unexpected(name)
    return out


def parse_versions_page(body: bytes, timestamp: Any) -> dict[str, Any]:
    """The members of a ListObjectVersions response body, as botocore's parser builds them."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)  # noqa: S314 - the S3 endpoint's reply
    if root.tag != f"{_S3_NS}ListVersionsResult":
        raise _Unexpected(root.tag)
    out: dict[str, Any] = {}
    for child in root:
        name = child.tag[len(_S3_NS) :]
        if name == "Version":
            out.setdefault("Versions", []).append(_entry(child, timestamp))
        elif name == "DeleteMarker":
            out.setdefault("DeleteMarkers", []).append(_entry(child, timestamp))
        elif name == "CommonPrefixes":
            prefix = {c.tag[len(_S3_NS) :]: _text(c) for c in child}
            if set(prefix) - {"Prefix"}:
                raise _Unexpected("CommonPrefixes")
            out.setdefault("CommonPrefixes", []).append(prefix)
        elif name == "IsTruncated":
            out[name] = _bool(child)
        elif name == "MaxKeys":
            out[name] = int(_text(child))
        elif name in _TOP_TEXT:
            out[name] = _text(child)
        else:
            raise _Unexpected(name)
    return out


class _FastListVersionsParser:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def parse(self, response: dict[str, Any], shape: Any) -> Any:
        body = response.get("body")
        if (
            shape is None
            or getattr(shape, "name", None) != "ListObjectVersionsOutput"
            or response.get("status_code") != 200
            or not isinstance(body, bytes)
        ):
            return self.inner.parse(response, shape)
        try:
            members = parse_versions_page(body, self.inner._timestamp_parser)
        except Exception:
            return self.inner.parse(response, shape)
        # headers and ResponseMetadata exactly as botocore builds them, from an empty page
        parsed = self.inner.parse({**response, "body": _EMPTY_PAGE}, shape)
        parsed.update(members)
        return parsed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FastListingParserFactory(ResponseParserFactory):  # type: ignore[misc]
    def create_parser(self, protocol_name: str) -> Any:
        parser = super().create_parser(protocol_name)
        return _FastListVersionsParser(parser) if protocol_name == "rest-xml" else parser


def s3_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    max_pool_connections: int = 16,
    max_attempts: int = MAX_ATTEMPTS,
) -> Any:
    """A boto3 S3 client with adaptive retries; ``endpoint_url`` for the local emulator."""
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise CredentialsMissing(
            f"AWS profile {profile!r} not found: check --profile / AWS_PROFILE and ~/.aws/config"
        ) from None
    # S3 lists a LastModified per version: botocore's default (dateutil) parser took most of the
    # CPU of a million-version listing; ISO 8601 goes through datetime.fromisoformat instead
    # ListObjectVersions pages are parsed directly (see FastListingParserFactory)
    factory = FastListingParserFactory()
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    session._session.register_component("response_parser_factory", factory)
    config = Config(
        retries={"mode": "adaptive", "max_attempts": max_attempts},
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    client = session.client("s3", endpoint_url=endpoint_url, config=config)
    _skip_error_sniffing_for_complete_listings(client)
    return client


def listing_or_error_check(handler: Any) -> Any:
    """botocore parses every 200 S3 body once more only to see whether it is an <Error> (then it
    retries): a second full XML parse of each listing page. A complete ListVersionsResult document is
    not an error; anything else still goes through botocore's check."""

    def check(operation_model: Any, response_dict: Any, **kwargs: Any) -> Any:
        body = response_dict.get("body") if response_dict else None
        if (
            getattr(operation_model, "name", None) == "ListObjectVersions"
            and response_dict.get("status_code") == 200
            and isinstance(body, bytes)
            and body.rstrip().endswith(b"</ListVersionsResult>")
            and b"<ListVersionsResult" in body[:512]
        ):
            return None
        return handler(operation_model, response_dict, **kwargs)

    return check


def _skip_error_sniffing_for_complete_listings(client: Any) -> None:
    from botocore import handlers

    original = getattr(handlers, "_handle_200_error", None)
    if original is None:  # a botocore without it: nothing to skip
        return
    client.meta.events.unregister("before-parse.s3.*", original)
    client.meta.events.register_first("before-parse.s3.*", listing_or_error_check(original))


class S3Store:
    """Access to one bucket. Give each store its own client: requests are counted on the client."""

    def __init__(self, bucket: str, client: Any) -> None:
        if not bucket:
            raise InvalidInput("no bucket given: pass --bucket or set REGVAULT_BUCKET")
        self.bucket = bucket
        self.client = client
        self.requests = RequestCounter()
        client.meta.events.register("before-send.s3", self.requests)

    @property
    def endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    @contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            raise self._translate(exc, operation, key) from None
        except EndpointConnectionError:
            raise EndpointUnreachable(
                f"cannot reach S3 at {self.endpoint}: "
                "check --endpoint-url / AWS_ENDPOINT_URL and that the service is running"
            ) from None
        except (IncompleteReadError, ResponseStreamingError) as exc:
            raise BodyCutShort(
                f"S3 {operation} of {key or self.bucket}: the body was cut short ({exc})"
            ) from None
        except NoCredentialsError:
            raise CredentialsMissing(
                "no AWS credentials found: set AWS_PROFILE/--profile or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            ) from None
        except BotoCoreError as exc:
            raise StorageError(f"S3 {operation} failed: {exc}") from None

    def _translate(self, exc: ClientError, operation: str, key: str | None) -> Exception:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        where = f"s3://{self.bucket}/{key}" if key else f"bucket {self.bucket!r}"
        if code == "NoSuchBucket":
            return BucketNotFound(f"bucket {self.bucket!r} does not exist (check --bucket / REGVAULT_BUCKET)")
        if status == 404 and key is None:
            return BucketNotFound(f"bucket {self.bucket!r} does not exist (check --bucket / REGVAULT_BUCKET)")
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

    # --- bucket ----------------------------------------------------------------------------
    def check_bucket(self) -> None:
        with self._errors("HeadBucket"):
            self.client.head_bucket(Bucket=self.bucket)

    def versioning_status(self) -> str | None:
        """'Enabled', 'Suspended' or None (never enabled)."""
        with self._errors("GetBucketVersioning"):
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        return str(status) if status else None

    # --- listing ---------------------------------------------------------------------------
    def list_versions(self, prefix: str, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[list[VersionRecord]]:
        """Yield pages of ListObjectVersions below ``prefix`` (versions and delete markers).

        Within a key, records come newest first as S3 returns them; a page may end inside a key.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
        while True:
            with self._errors("ListObjectVersions"):
                response = self.client.list_object_versions(**params)
            yield _records(response)
            if not response.get("IsTruncated"):
                return
            params["KeyMarker"] = response.get("NextKeyMarker")
            if response.get("NextVersionIdMarker"):
                params["VersionIdMarker"] = response["NextVersionIdMarker"]
            else:
                params.pop("VersionIdMarker", None)

    # --- objects ---------------------------------------------------------------------------
    def get_bytes(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        """Read one object (version). Refuses to read more than ``max_bytes`` into memory."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        if max_bytes is not None:
            params["Range"] = f"bytes=0-{max_bytes}"
        body = self._read_retrying(key, params)
        if max_bytes is not None and len(body) > max_bytes:
            raise ObjectTooLarge(f"s3://{self.bucket}/{key} is larger than {max_bytes} bytes")
        return bytes(body)

    def _read_retrying(self, key: str, params: dict[str, Any]) -> bytes:
        """GetObject and read the body; a body cut short (connection dropped mid-stream) is read again.

        botocore retries failed requests but not a stream that breaks after the headers arrived."""
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            try:
                with self._errors("GetObject", key):
                    return bytes(self.client.get_object(**params)["Body"].read())
            except BodyCutShort:
                if attempt == STREAM_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def stream_sha256(
        self, key: str, version_id: str | None = None, chunk_size: int = 1024 * 1024
    ) -> tuple[str, int]:
        """Hash an object as it streams in: (hex sha256, bytes read). Memory: one chunk."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            digest = hashlib.sha256()
            size = 0
            try:
                with self._errors("GetObject", key):
                    body = self.client.get_object(**params)["Body"]
                    try:
                        for chunk in body.iter_chunks(chunk_size):
                            digest.update(chunk)
                            size += len(chunk)
                    finally:
                        body.close()
                return digest.hexdigest(), size
            except BodyCutShort:
                if attempt == STREAM_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def latest_version_id(self, key: str) -> str | None:
        """The version id of the key's latest version (a delete marker's too); None: no version."""
        with self._errors("ListObjectVersions", key):
            response = self.client.list_object_versions(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        for record in _records(response):
            if record.key == key and record.is_latest:
                return record.version_id
        return None

    def copy_version(self, key: str, source_key: str, source_version: str, size: int | None = None) -> None:
        """Copy one old version forward onto ``key`` (a new version; nothing is deleted).

        Above 5 GB S3 refuses a single CopyObject: boto3's managed copy does it in parts.
        """
        source = {"Bucket": self.bucket, "Key": source_key, "VersionId": source_version}
        with self._errors("CopyObject", key):
            if size is not None and size > MAX_SINGLE_COPY:
                from boto3.s3.transfer import TransferConfig

                self.client.copy(
                    source, self.bucket, key, Config=TransferConfig(multipart_threshold=MAX_SINGLE_COPY)
                )
            else:
                self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source)

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        """Write one object (reports bucket only; regvault never writes the registry bucket here)."""
        with self._errors("PutObject", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    # --- bucket posture --------------------------------------------------------------------
    def posture(self) -> BucketPosture:
        """Versioning, lifecycle, encryption, public access block and policy; what cannot be read
        (access denied) is recorded in ``unreadable`` instead of failing the audit."""
        p = BucketPosture(versioning=None)
        p.versioning = self._optional("GetBucketVersioning", p, lambda: self.versioning_status())

        c, b = self.client, self.bucket
        p.lifecycle_rules = self._optional("GetLifecycleConfiguration", p, lambda: lifecycle_rules(c, b))
        p.encryption_rules = self._optional("GetEncryptionConfiguration", p, lambda: encryption_rules(c, b))
        p.public_access_block = self._optional(
            "GetBucketPublicAccessBlock", p, lambda: public_access_block(c, b)
        )
        p.policy = self._optional("GetBucketPolicy", p, lambda: bucket_policy(c, b))
        return p

    def _optional(self, operation: str, posture: BucketPosture, call: Any) -> Any:
        try:
            with self._errors(operation):
                return call()
        except AccessDenied:
            posture.unreadable.append(operation)
            return None


# --- bucket settings: one read each, "not configured" answered as empty (audit and setup share them)


def _unless_missing(call: Any, missing_code: str, empty: Any) -> Any:
    try:
        return call()
    except ClientError as exc:
        if _code(exc) == missing_code:
            return empty
        raise


def lifecycle_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    out = _unless_missing(
        lambda: client.get_bucket_lifecycle_configuration(Bucket=bucket), "NoSuchLifecycleConfiguration", {}
    )
    return list(out.get("Rules", []))


def encryption_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    out = _unless_missing(
        lambda: client.get_bucket_encryption(Bucket=bucket),
        "ServerSideEncryptionConfigurationNotFoundError",
        {},
    )
    return list(out.get("ServerSideEncryptionConfiguration", {}).get("Rules", []))


def public_access_block(client: Any, bucket: str) -> dict[str, bool]:
    out = _unless_missing(
        lambda: client.get_public_access_block(Bucket=bucket), "NoSuchPublicAccessBlockConfiguration", {}
    )
    return dict(out.get("PublicAccessBlockConfiguration", {}))


def bucket_policy(client: Any, bucket: str) -> str | None:
    out = _unless_missing(lambda: client.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy", {})
    return str(out["Policy"]) if "Policy" in out else None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (None for anything else)."""
    return _code(exc) if isinstance(exc, ClientError) else None


def client(
    service: str, region: str | None = None, endpoint_url: str | None = None, profile: str | None = None
) -> Any:
    """A boto3 client for setup steps (IAM, EC2, SSM, Secrets Manager, Step Functions), adaptive retries."""
    config = Config(retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS})
    session = boto3.session.Session(profile_name=profile) if profile else boto3
    return session.client(service, region_name=region, endpoint_url=endpoint_url, config=config)


__all__ = ["ClientError"]


class Notifier:
    """Publishes one-line notices to an SNS topic."""

    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self.client = client or boto3.client(
            "sns", config=Config(retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS})
        )

    def publish(self, subject: str, message: str) -> None:
        try:
            self.client.publish(TopicArn=self.topic_arn, Subject=subject[:100], Message=message)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"could not publish to {self.topic_arn}: {exc}") from None


class RegistryRestarter:
    """Restarts the registry container on its instance through SSM Run Command.

    After blobs come back, a registry running the in-memory blob-descriptor cache may still answer
    for them from memory (distribution #3743); a restart clears it. The command names no secret.
    """

    CONTAINER = "registry"

    def __init__(self, instance_id: str, client: Any = None) -> None:
        self.instance_id = instance_id
        self.client = client or boto3.client(
            "ssm", config=Config(retries={"mode": "adaptive", "max_attempts": MAX_ATTEMPTS})
        )

    def restart(self) -> str:
        try:
            response = self.client.send_command(
                InstanceIds=[self.instance_id],
                DocumentName="AWS-RunShellScript",
                Comment="regvault: restart the registry after a restore",
                Parameters={"commands": [f"docker restart {self.CONTAINER}"]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"could not restart the registry on {self.instance_id}: {exc}") from None
        return str(response["Command"]["CommandId"])


class StateMachine:
    """Starts and follows executions of the Setup state machine (``regvault setup``)."""

    def __init__(self, arn: str, client: Any) -> None:
        self.arn = arn
        if not arn.startswith("arn:") or arn.count(":") < 6:
            raise InvalidInput(f"not a state machine ARN: {arn[:80]!r}")
        self.client = client

    def last_input(self) -> dict[str, Any]:
        try:
            executions = self.client.list_executions(stateMachineArn=self.arn, maxResults=20)["executions"]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"cannot read {self.arn}: {exc}") from None
        for execution in sorted(executions, key=lambda e: e["startDate"], reverse=True):
            text = self.client.describe_execution(executionArn=execution["executionArn"]).get("input")
            if text:
                return dict(json.loads(text))
        raise InvalidInput(f"{self.arn} has never run: deploy the stack first (sam deploy)")

    def start(self, name: str, document: dict[str, Any]) -> str:
        response = self.client.start_execution(
            stateMachineArn=self.arn, name=name, input=json.dumps(document)
        )
        return str(response["executionArn"])

    def status(self, execution_arn: str) -> dict[str, Any]:
        return dict(self.client.describe_execution(executionArn=execution_arn))


def _records(response: dict[str, Any]) -> list[VersionRecord]:
    out = [
        VersionRecord(
            key=item["Key"],
            version_id=item.get("VersionId") or "null",
            last_modified=item["LastModified"],
            is_latest=bool(item.get("IsLatest")),
            is_delete_marker=False,
            size=int(item.get("Size", 0)),
            etag=str(item["ETag"]).strip('"') if item.get("ETag") else None,
        )
        for item in response.get("Versions", ())
    ]
    out += [
        VersionRecord(
            key=item["Key"],
            version_id=item.get("VersionId") or "null",
            last_modified=item["LastModified"],
            is_latest=bool(item.get("IsLatest")),
            is_delete_marker=True,
            size=0,
            etag=None,
        )
        for item in response.get("DeleteMarkers", ())
    ]
    return out
