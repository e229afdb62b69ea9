"""What the last audit learned from each manifest version, so the next audit need not read it again.

An S3 object *version* never changes: the bytes behind (key, version id) are fixed for as long as the
version exists. A manifest read — its size, whether its bytes hash to its digest, what it references —
is therefore valid forever for that version, and a daily audit only has to read the manifests pushed
since the last one: ceil(versions / 1000) list requests + new manifests, instead of every manifest.

Entries are keyed by (digest, version id, ETag, size) as listed; a version id of ``null`` (an
unversioned bucket, where a key is overwritten in place) is never cached. Reads that failed for a
passing reason (the version vanished) are not cached. The file is gzip'd JSON; one that cannot be
read is ignored (the audit reads every manifest, as without a cache) and rewritten.
"""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

from regvault.errors import InvalidInput
from regvault.images.manifests import Descriptor, Manifest
from regvault.images.sources import ManifestRead
from regvault.storage.digest import Digest
from regvault.storage.inventory import ObjectVersion

FORMAT = "regvault-manifest-cache/1"
Key = tuple[str, str, str, int]


def _key(digest: Digest, version: ObjectVersion) -> Key | None:
    if not version.version_id or version.version_id == "null" or not version.etag:
        return None
    return (str(digest), version.version_id, version.etag, version.size)


def _manifest_doc(manifest: Manifest) -> dict[str, Any]:
    return {
        "media_type": manifest.media_type,
        "kind": manifest.kind,
        "artifact_type": manifest.artifact_type,
        "descriptors": [
            [d.role, d.media_type, str(d.digest), d.size, d.platform, d.foreign] for d in manifest.descriptors
        ],
    }


def _manifest(doc: dict[str, Any]) -> Manifest:
    return Manifest(
        media_type=str(doc["media_type"]),
        kind=str(doc["kind"]),
        descriptors=tuple(
            Descriptor(str(role), str(media), Digest.parse(digest), size, platform, bool(foreign))
            for role, media, digest, size, platform, foreign in doc["descriptors"]
        ),
        artifact_type=doc.get("artifact_type"),
    )


class ManifestCache:
    def __init__(self) -> None:
        self.entries: dict[Key, ManifestRead] = {}
        self.used: set[Key] = set()
        self.hits = 0
        self.problem: str | None = None  # why a stored cache was ignored

    def lookup(self, digest: Digest, version: ObjectVersion) -> ManifestRead | None:
        key = _key(digest, version)
        if key is None:
            return None
        read = self.entries.get(key)
        if read is not None:
            self.used.add(key)
            self.hits += 1
        return read

    def remember(self, digest: Digest, version: ObjectVersion, read: ManifestRead) -> None:
        key = _key(digest, version)
        if key is None or (read.digest_ok is False and read.error == "version vanished while reading"):
            return
        self.entries[key] = read
        self.used.add(key)

    # --- storage -----------------------------------------------------------------------------------

    def dumps(self) -> bytes:
        """The entries this run used or added (versions that are gone drop out)."""
        rows = []
        for key in sorted(self.used):
            read = self.entries[key]
            rows.append(
                [
                    *key,
                    read.size,
                    read.digest_ok,
                    _manifest_doc(read.manifest) if read.manifest else None,
                    read.error,
                ]
            )
        return gzip.compress(json.dumps({"format": FORMAT, "entries": rows}).encode(), mtime=0)

    @classmethod
    def loads(cls, data: bytes | None) -> ManifestCache:
        cache = cls()
        if not data:
            return cache
        try:
            doc = json.loads(gzip.decompress(data))
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {str(doc.get('format'))[:40]!r}")
            for digest, version_id, etag, size, read_size, ok, manifest, error in doc["entries"]:
                key = (str(Digest.parse(digest)), str(version_id), str(etag), int(size))
                cache.entries[key] = ManifestRead(
                    str(version_id),
                    int(read_size),
                    ok if ok is None else bool(ok),
                    _manifest(manifest) if manifest else None,
                    None if error is None else str(error),
                )
        except (OSError, EOFError, zlib.error, ValueError, TypeError, KeyError, InvalidInput) as exc:
            cache = cls()
            cache.problem = f"manifest cache ignored (unreadable: {str(exc)[:80]}); every manifest is read"
        return cache
