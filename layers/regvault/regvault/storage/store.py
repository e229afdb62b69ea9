"""The port the core reads and writes the registry's bucket through.

``RegistryStore`` is the one Protocol the audit, restore, listing and status depend on;
``regvault.aws.s3.S3Store`` implements it over boto3 and the tests' fakes implement it in memory. The two
value types it speaks in (a listed object version, the bucket's posture) live here too, so ``storage``
imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

DEFAULT_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One entry of ListObjectVersions: an object version or a delete marker."""

    key: str
    version_id: str
    last_modified: datetime
    is_latest: bool
    is_delete_marker: bool
    size: int
    etag: str | None


@dataclass
class BucketPosture:
    """The bucket settings the audit judges; a setting that could not be read is named in ``unreadable``."""

    versioning: str | None  # "Enabled", "Suspended", or None (never enabled)
    lifecycle_rules: list[dict[str, Any]] | None = None
    encryption_rules: list[dict[str, Any]] | None = None
    public_access_block: dict[str, bool] | None = None
    policy: str | None = None
    unreadable: list[str] = field(default_factory=list)


class RequestTally(Protocol):
    """How many requests a store has sent so far (reports say what a run cost)."""

    @property
    def total(self) -> int: ...


class ObjectStore(Protocol):
    """Objects by key in one bucket: what the reports bucket (reports, the manifest cache) needs."""

    bucket: str

    def get_bytes(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes: ...

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None: ...


class RegistryStore(ObjectStore, Protocol):
    """The registry's bucket, every object version in it. Errors are regvault's own (``regvault.errors``)."""

    @property
    def requests(self) -> RequestTally: ...  # a warm Lambda reuses its store: take differences

    @property
    def endpoint(self) -> str: ...

    def check_bucket(self) -> None: ...

    def versioning_status(self) -> str | None: ...

    def list_versions(
        self, prefix: str, page_size: int = ..., after: str | None = None
    ) -> Iterator[list[VersionRecord]]: ...

    def list_current(self, prefix: str, page_size: int = ...) -> Iterator[list[VersionRecord]]: ...

    def list_prefixes(self, prefix: str) -> list[str]: ...  # the folders below prefix, deleted ones too

    def stream_sha256(
        self, key: str, version_id: str | None = None, chunk_size: int = ...
    ) -> tuple[str, int]: ...

    def latest_version_id(self, key: str) -> str | None: ...

    def copy_version(
        self,
        key: str,
        source_key: str,
        source_version: str,
        size: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None: ...

    def version_metadata(self, key: str, version_id: str) -> dict[str, str]: ...

    def posture(self) -> BucketPosture: ...

    def put_if_absent(self, key: str, body: bytes, content_type: str) -> bool: ...

    def add_delete_marker(self, key: str) -> str: ...
