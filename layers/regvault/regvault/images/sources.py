"""Reading what an image is made of, any version of it: manifest bodies (digest checked, parsed, read
once each) and links (which digest a link version holds, from its ETag when possible)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from regvault.errors import InvalidInput, ManifestError, ObjectMissing, ObjectTooLarge
from regvault.images.manifests import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from regvault.storage.digest import Digest, parse_link_body
from regvault.storage.inventory import KeyHistory, ObjectVersion
from regvault.storage.layout import BlobData
from regvault.storage.model import LINK_SIZES, RegistryModel, resolve_by_etag
from regvault.storage.store import RegistryStore

if TYPE_CHECKING:
    from regvault.images.manifest_cache import ManifestCache


def has_data(history: KeyHistory | None) -> bool:
    return history is not None and any(not v.is_delete_marker for v in history.versions)


def is_live(history: KeyHistory | None) -> bool:
    return history is not None and history.current is not None


# --- manifest bodies ---------------------------------------------------------------------------


@dataclass
class ManifestRead:
    version_id: str
    size: int
    digest_ok: bool | None  # None: not checked (the object was too large or vanished)
    manifest: Manifest | None
    error: str | None


class ManifestSource:
    """Reads manifest blobs (any version) once each, with their digest checked."""

    def __init__(
        self, reader: RegistryStore, model: RegistryModel, known: ManifestCache | None = None
    ) -> None:
        self.reader = reader
        self.model = model
        self.cache: dict[tuple[Digest, str], ManifestRead] = {}
        self.known = known  # a ManifestCache from an earlier run: versions it knows are not read again

    def _read(self, digest: Digest, version: ObjectVersion) -> ManifestRead:
        cached = self.cache.get((digest, version.version_id))
        if cached is not None:
            return cached
        if self.known is not None:
            known: ManifestRead | None = self.known.lookup(digest, version)
            if known is not None:
                self.cache[(digest, version.version_id)] = known
                return known
        key = self.model.layout.key(BlobData(digest))
        try:
            body = self.reader.get_bytes(key, version.version_id, max_bytes=MAX_MANIFEST_BYTES)
        except ObjectTooLarge:
            read = ManifestRead(version.version_id, version.size, None, None, "larger than 4 MiB")
        except ObjectMissing:
            read = ManifestRead(
                version.version_id, version.size, False, None, "version vanished while reading"
            )
        else:
            ok = hashlib.new(digest.algorithm, body).hexdigest() == digest.hex
            try:
                read = ManifestRead(version.version_id, len(body), ok, parse_manifest(body), None)
            except ManifestError as exc:
                read = ManifestRead(version.version_id, len(body), ok, None, str(exc))
        self.cache[(digest, version.version_id)] = read
        if self.known is not None:
            self.known.remember(digest, version, read)
        return read

    def current(self, digest: Digest) -> ManifestRead | None:
        history = self.model.blobs.get(digest)
        if history is None or history.current is None:
            return None
        return self._read(digest, history.current)

    def best_recoverable(self, digest: Digest) -> ManifestRead | None:
        """The newest data version whose bytes hash to the digest and parse (None: none left)."""
        history = self.model.blobs.get(digest)
        if history is None:
            return None
        for version in history.data_versions:
            read = self._read(digest, version)
            if read.digest_ok and read.manifest is not None:
                return read
        return None

    def prefetch_live(self, workers: int) -> None:
        """Read, in parallel, every live revision of every repository, then the children they reference."""
        repositories = self.model.repositories.values()
        self.prefetch({d for r in repositories for d, h in r.revisions.items() if is_live(h)}, workers)
        children = {
            c.digest for read in list(self.cache.values()) if read.manifest for c in read.manifest.children
        }
        self.prefetch(children, workers)

    def prefetch(self, digests: Iterable[Digest], workers: int, historical: bool = False) -> None:
        jobs = []
        for digest in set(digests):
            history = self.model.blobs.get(digest)
            if history is None:
                continue
            versions = history.data_versions if historical else ([history.current] if history.current else [])
            jobs += [(digest, v) for v in versions[:1]]
        if not jobs:
            return
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            list(pool.map(lambda job: self._read(*job), jobs))


# --- link reading ------------------------------------------------------------------------------


class LinkReader:
    """Which digest a link version holds: from its ETag when possible, otherwise by reading it."""

    def __init__(self, reader: RegistryStore) -> None:
        self.reader = reader
        self.cache: dict[tuple[str, str], Digest | str] = {}

    def resolve(self, history: KeyHistory, version: ObjectVersion, candidates: list[Digest]) -> Digest | str:
        """The digest, or a string saying why the link is malformed."""
        digest = resolve_by_etag(version, candidates)
        if digest is not None:
            return digest
        cached = self.cache.get((history.key, version.version_id))
        if cached is not None:
            return cached
        try:
            body = self.reader.get_bytes(history.key, version.version_id, max_bytes=1024)
            result: Digest | str = parse_link_body(body)
        except ObjectTooLarge:
            result = "link body larger than 1 KiB"
        except InvalidInput as exc:
            result = str(exc)
        except ObjectMissing:
            result = "version vanished while reading"
        self.cache[(history.key, version.version_id)] = result
        return result

    def holds(self, history: KeyHistory, version: ObjectVersion, expected: Digest) -> bool | str:
        """True when the link version holds exactly ``expected``; else the reason."""
        if version.size == LINK_SIZES.get(expected.algorithm) and version.etag == expected.link_etag():
            return True
        result = self.resolve(history, version, [])
        if isinstance(result, Digest):
            return True if result == expected else f"holds {result} instead of {expected}"
        return result
