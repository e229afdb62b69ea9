"""``S3Store``: one bucket, the ``regvault.storage.store.RegistryStore`` the core depends on; and the
bucket settings readers (lifecycle, encryption, public access block, policy) audit and setup share.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from regvault.aws.clients import RequestCounter
from regvault.aws.errors import BodyCutShort, s3_errors, translate, unless_missing
from regvault.aws.listing import records
from regvault.errors import AccessDenied, InvalidInput, ObjectTooLarge
from regvault.storage.store import DEFAULT_PAGE_SIZE, BucketPosture, VersionRecord

MAX_SINGLE_COPY = 5 * 1024**3  # S3's CopyObject limit
STREAM_ATTEMPTS = 4  # reads of a body that broke mid-stream

T = TypeVar("T")


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

    def _errors(self, operation: str, key: str | None = None) -> AbstractContextManager[None]:
        return s3_errors(self.bucket, self.client, operation, key)

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
    def list_versions(
        self, prefix: str, page_size: int = DEFAULT_PAGE_SIZE, after: str | None = None
    ) -> Iterator[list[VersionRecord]]:
        """Yield pages of ListObjectVersions below ``prefix`` (versions and delete markers), of the keys
        after ``after`` when given (every version of that key itself is left out).

        Within a key, records come newest first as S3 returns them; a page may end inside a key.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
        if after is not None:
            params["KeyMarker"] = after
        while True:
            with self._errors("ListObjectVersions"):
                response = self.client.list_object_versions(**params)
            yield records(response)
            if not response.get("IsTruncated"):
                return
            params["KeyMarker"] = response.get("NextKeyMarker")
            if response.get("NextVersionIdMarker"):
                params["VersionIdMarker"] = response["NextVersionIdMarker"]
            else:
                params.pop("VersionIdMarker", None)

    def list_prefixes(self, prefix: str) -> list[str]:
        """The folders right below ``prefix`` (ListObjectVersions with Delimiter "/": a folder whose keys are
        all delete-marked is found too)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": 1000}
        out: list[str] = []
        while True:
            with self._errors("ListObjectVersions"):
                response = self.client.list_object_versions(**params)
            out += [str(p["Prefix"]) for p in response.get("CommonPrefixes", ())]
            if not response.get("IsTruncated"):
                return out
            params["KeyMarker"] = response.get("NextKeyMarker")
            params.pop("VersionIdMarker", None)
            if response.get("NextVersionIdMarker"):
                params["VersionIdMarker"] = response["NextVersionIdMarker"]

    def list_current(self, prefix: str, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[list[VersionRecord]]:
        """Yield pages of ListObjectsV2 below ``prefix``: the keys a plain GET finds now (no delete-marked
        key, no older version). Records say ``is_latest`` and carry no version id ("")."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": page_size}
        while True:
            with self._errors("ListObjectsV2"):
                response = self.client.list_objects_v2(**params)
            yield [
                VersionRecord(
                    key=item["Key"],
                    version_id="",
                    last_modified=item["LastModified"],
                    is_latest=True,
                    is_delete_marker=False,
                    size=int(item.get("Size", 0)),
                    etag=str(item["ETag"]).strip('"') if item.get("ETag") else None,
                )
                for item in response.get("Contents", ())
            ]
            if not response.get("IsTruncated") or not response.get("NextContinuationToken"):
                return
            params["ContinuationToken"] = response["NextContinuationToken"]

    # --- objects ---------------------------------------------------------------------------
    def get_bytes(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        """Read one object (version). Refuses to read more than ``max_bytes`` into memory."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id
        if max_bytes is not None:
            params["Range"] = f"bytes=0-{max_bytes}"
        body = self._read_again_if_cut_short(
            key, lambda: bytes(self.client.get_object(**params)["Body"].read())
        )
        if max_bytes is not None and len(body) > max_bytes:
            raise ObjectTooLarge(f"s3://{self.bucket}/{key} is larger than {max_bytes} bytes")
        return bytes(body)

    def stream_sha256(
        self, key: str, version_id: str | None = None, chunk_size: int = 1024 * 1024
    ) -> tuple[str, int]:
        """Hash an object as it streams in: (hex sha256, bytes read). Memory: one chunk."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version_id:
            params["VersionId"] = version_id

        def read() -> tuple[str, int]:
            digest = hashlib.sha256()
            size = 0
            body = self.client.get_object(**params)["Body"]
            try:
                for chunk in body.iter_chunks(chunk_size):
                    digest.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
            return digest.hexdigest(), size

        return self._read_again_if_cut_short(key, read)

    def _read_again_if_cut_short(self, key: str, read: Callable[[], T]) -> T:
        """GetObject and read the body (``read``); a body cut short (connection dropped mid-stream) is
        read again. botocore retries failed requests but not a stream that breaks after the headers
        arrived."""
        for attempt in range(1, STREAM_ATTEMPTS + 1):
            try:
                with self._errors("GetObject", key):
                    return read()
            except BodyCutShort:
                if attempt == STREAM_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def latest_version_id(self, key: str) -> str | None:
        """The version id of the key's latest version (a delete marker's too); None: no version."""
        with self._errors("ListObjectVersions", key):
            response = self.client.list_object_versions(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        for record in records(response):
            if record.key == key and record.is_latest:
                return record.version_id
        return None

    def copy_version(
        self,
        key: str,
        source_key: str,
        source_version: str,
        size: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Copy one old version forward onto ``key`` (a new version; nothing is deleted). ``metadata``
        (small objects only: a link) replaces the copy's user metadata, e.g. the guard's mark on its
        own writes.

        Above 5 GB S3 refuses a single CopyObject: boto3's managed copy does it in parts.
        """
        source = {"Bucket": self.bucket, "Key": source_key, "VersionId": source_version}
        with self._errors("CopyObject", key):
            if metadata is not None:
                self.client.copy_object(
                    Bucket=self.bucket,
                    Key=key,
                    CopySource=source,
                    Metadata=metadata,
                    MetadataDirective="REPLACE",
                )
            elif size is not None and size > MAX_SINGLE_COPY:
                from boto3.s3.transfer import TransferConfig

                self.client.copy(
                    source, self.bucket, key, Config=TransferConfig(multipart_threshold=MAX_SINGLE_COPY)
                )
            else:
                self.client.copy_object(Bucket=self.bucket, Key=key, CopySource=source)

    def version_metadata(self, key: str, version_id: str) -> dict[str, str]:
        """The user metadata of one version (HeadObject)."""
        with self._errors("HeadObject", key):
            head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        return {str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()}

    def put_if_absent(self, key: str, body: bytes, content_type: str) -> bool:
        """Write ``key`` only when it has no current version (S3's conditional ``If-None-Match: *``);
        False when one exists. The lease of regvault's writers is taken this way."""
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfNoneMatch="*"
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                return False
            raise translate(exc, self.bucket, "PutObject", key) from None
        return True

    def add_delete_marker(self, key: str) -> str:
        """DeleteObject without a version id: a delete marker on top, every version kept. Returns the
        marker's version id. (regvault never sends DeleteObject with a version id.)"""
        with self._errors("DeleteObject", key):
            response = self.client.delete_object(Bucket=self.bucket, Key=key)
        return str(response.get("VersionId") or "null")

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


def lifecycle_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    out = unless_missing(
        lambda: client.get_bucket_lifecycle_configuration(Bucket=bucket), "NoSuchLifecycleConfiguration", {}
    )
    return list(out.get("Rules", []))


def encryption_rules(client: Any, bucket: str) -> list[dict[str, Any]]:
    out = unless_missing(
        lambda: client.get_bucket_encryption(Bucket=bucket),
        "ServerSideEncryptionConfigurationNotFoundError",
        {},
    )
    return list(out.get("ServerSideEncryptionConfiguration", {}).get("Rules", []))


def public_access_block(client: Any, bucket: str) -> dict[str, bool]:
    out = unless_missing(
        lambda: client.get_public_access_block(Bucket=bucket), "NoSuchPublicAccessBlockConfiguration", {}
    )
    return dict(out.get("PublicAccessBlockConfiguration", {}))


def bucket_policy(client: Any, bucket: str) -> str | None:
    out = unless_missing(lambda: client.get_bucket_policy(Bucket=bucket), "NoSuchBucketPolicy", {})
    return str(out["Policy"]) if "Policy" in out else None
