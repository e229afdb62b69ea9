"""A synthetic listing source: a generated registry history served from memory, no S3, no HTTP.

``SimulatedStore`` implements ``regvault.storage.store.RegistryStore`` over the generator's ops:
ListObjectVersions pages (markers exclusive, versions newest first, as S3 lists them), ListObjectsV2
pages, and GETs of manifest versions. It keeps, per key, the versions as compact tuples, and bodies only
of manifests (what the audit reads; links resolve from their ETags). It counts requests per API, so a
simulation at a size no emulator holds (``make bench``: 10M versions) measures regvault's own work
(CPU, memory, requests) on the same layout the real registry writes. Network time is not simulated:
``bench`` projects it from the request count.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from harness.generator import Op
from regvault.errors import ObjectMissing
from regvault.storage.store import BucketPosture, VersionRecord

# (version id, epoch seconds, size, etag or None for a delete marker)
Version = tuple[str, float, int, str | None]


class Requests:
    def __init__(self) -> None:
        self.by_operation: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_operation.values())


def _is_manifest(body: bytes) -> bool:
    return body[:1] == b"{" and b'"schemaVersion"' in body[:200]


class SimulatedStore:
    def __init__(self, ops: Iterable[Op], bucket: str = "simulated") -> None:
        self.bucket = bucket
        self.requests = Requests()
        versions: dict[str, list[Version]] = {}
        self.bodies: dict[tuple[str, str], bytes] = {}
        etags: dict[int, str] = {}  # id(body) -> md5: the generator shares one bytes object per blob
        for n, op in enumerate(ops):
            vid = f"{n:010x}"
            if op.body is None:
                versions.setdefault(op.key, []).append((vid, op.at, 0, None))
                continue
            etag = etags.get(id(op.body))
            if etag is None:
                etag = etags[id(op.body)] = hashlib.md5(op.body, usedforsecurity=False).hexdigest()
            versions.setdefault(op.key, []).append((vid, op.at, len(op.body), etag))
            if _is_manifest(op.body):
                self.bodies[(op.key, vid)] = op.body
        self.keys = sorted(versions)
        # newest first, as S3 lists them
        self.versions = {key: tuple(reversed(v)) for key, v in versions.items()}
        self.object_versions = sum(len(v) for v in self.versions.values())

    @property
    def endpoint(self) -> str:
        return "simulated://"

    def check_bucket(self) -> None:
        self.requests.by_operation["HeadBucket"] += 1

    def versioning_status(self) -> str | None:
        return "Enabled"

    def posture(self) -> BucketPosture:
        self.requests.by_operation["GetBucketVersioning"] += 1
        return BucketPosture(versioning="Enabled", lifecycle_rules=[], encryption_rules=[], policy=None)

    def _records(self, key: str, versions: tuple[Version, ...]) -> Iterator[VersionRecord]:
        for position, (vid, at, size, etag) in enumerate(versions):
            yield VersionRecord(
                key=key,
                version_id=vid,
                last_modified=datetime.fromtimestamp(at, UTC).replace(microsecond=0),
                is_latest=position == 0,
                is_delete_marker=etag is None,
                size=size,
                etag=etag,
            )

    def list_versions(
        self, prefix: str, page_size: int = 1000, after: str | None = None
    ) -> Iterator[list[VersionRecord]]:
        start = bisect.bisect_left(self.keys, prefix)
        if after is not None:
            start = max(start, bisect.bisect_right(self.keys, after))
        page: list[VersionRecord] = []
        i = start
        while i < len(self.keys) and self.keys[i].startswith(prefix):
            key = self.keys[i]
            for record in self._records(key, self.versions[key]):
                page.append(record)
                if len(page) == page_size:
                    self.requests.by_operation["ListObjectVersions"] += 1
                    yield page
                    page = []
            i += 1
        self.requests.by_operation["ListObjectVersions"] += 1
        yield page

    def list_prefixes(self, prefix: str) -> list[str]:
        self.requests.by_operation["ListObjectVersions"] += 1
        out: list[str] = []
        i = bisect.bisect_left(self.keys, prefix)
        while i < len(self.keys) and self.keys[i].startswith(prefix):
            cut = self.keys[i].find("/", len(prefix))
            if cut < 0:
                i += 1
                continue
            folder = self.keys[i][: cut + 1]
            out.append(folder)
            i = bisect.bisect_left(self.keys, folder[:-1] + chr(ord("/") + 1), i)
        return out

    def list_current(self, prefix: str, page_size: int = 1000) -> Iterator[list[VersionRecord]]:
        page: list[VersionRecord] = []
        i = bisect.bisect_left(self.keys, prefix)
        while i < len(self.keys) and self.keys[i].startswith(prefix):
            key = self.keys[i]
            latest = next(self._records(key, self.versions[key][:1]))
            if not latest.is_delete_marker:
                page.append(latest)
                if len(page) == page_size:
                    self.requests.by_operation["ListObjectsV2"] += 1
                    yield page
                    page = []
            i += 1
        self.requests.by_operation["ListObjectsV2"] += 1
        yield page

    def get_bytes(self, key: str, version_id: str | None = None, max_bytes: int | None = None) -> bytes:
        self.requests.by_operation["GetObject"] += 1
        if version_id is None:
            version_id = self.versions[key][0][0]
        body = self.bodies.get((key, version_id))
        if body is None:
            raise ObjectMissing(f"simulated://{key} ({version_id}): only manifest bodies are kept")
        return body

    def put_bytes(self, key: str, body: bytes, content_type: str) -> None:
        raise AssertionError("the audit never writes to the registry bucket")

    def put_if_absent(self, key: str, body: bytes, content_type: str) -> bool:
        raise AssertionError("the audit never writes to the registry bucket")

    def add_delete_marker(self, key: str) -> str:
        raise AssertionError("the audit never writes to the registry bucket")

    def stream_sha256(self, key: str, version_id: str | None = None, chunk_size: int = 0) -> tuple[str, int]:
        raise AssertionError("the simulation does not keep layer bytes: no --deep")

    def latest_version_id(self, key: str) -> str | None:
        return self.versions[key][0][0] if key in self.versions else None

    def copy_version(
        self,
        key: str,
        source_key: str,
        source_version: str,
        size: int | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        raise AssertionError("the audit never writes to the registry bucket")

    def version_metadata(self, key: str, version_id: str) -> dict[str, str]:
        return {}


def summary_of(store: SimulatedStore) -> dict[str, Any]:
    return {
        "keys": len(store.keys),
        "object_versions": store.object_versions,
        "manifest_bodies": len(store.bodies),
    }
