"""``regvault ls``: repositories and tags as S3 holds them, deleted ones included.

Costs one ListObjectVersions request per 1,000 versions under ``repositories/`` (or one repository's
prefix), one GET per distinct current manifest (for its media type), and a GET only for a link whose
ETag does not identify its digest.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regvault.errors import ManifestError, ObjectMissing, ObjectTooLarge
from regvault.images.closure import EPOCH
from regvault.images.manifests import MAX_MANIFEST_BYTES, parse_manifest
from regvault.images.sources import LinkReader
from regvault.storage.digest import Digest
from regvault.storage.inventory import Inventory, walk
from regvault.storage.layout import BlobData, RegistryLayout
from regvault.storage.model import RegistryModel, RepositoryKeys, TagKeys, link_candidates, resolve_by_etag
from regvault.storage.reference import validate_repository
from regvault.storage.store import RegistryStore


@dataclass
class TagEntry:
    repository: str
    tag: str
    deleted: bool
    digest: Digest | None  # current target; for a deleted tag, the last one it had
    written_at: datetime | None  # when current/link was last written (or delete-marked)
    media_type: str | None = None
    history: list[Digest] = field(default_factory=list)  # distinct digests, newest first
    problem: str | None = None

    @property
    def earlier_digests(self) -> int:
        return sum(1 for d in self.history if d != self.digest)

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "state": "deleted" if self.deleted else "live",
            "digest": str(self.digest) if self.digest else None,
            "media_type": self.media_type,
            "written_at": self.written_at.isoformat() if self.written_at else None,
            "earlier_digests": self.earlier_digests,
            "history": [str(d) for d in self.history],
            "problem": self.problem,
        }


@dataclass
class RepositoryEntry:
    name: str
    deleted: bool
    tags: list[TagEntry]

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": "deleted" if self.deleted else "live",
            "tags": [t.as_dict() for t in self.tags],
        }


@dataclass
class Listing:
    repositories: list[RepositoryEntry]
    object_versions: int
    delete_markers: int


def _tag_entry(links: LinkReader, repo: RepositoryKeys, tag: TagKeys) -> TagEntry:
    entry = TagEntry(repo.name, tag.name, tag.deleted, None, None)
    candidates = link_candidates(repo, tag)
    history: dict[Digest, None] = {}
    current = tag.current
    if current is not None and current.latest is not None:
        entry.written_at = current.latest.last_modified
        for i, version in enumerate(current.data_versions):
            # the latest version is read when its ETag says nothing; earlier ones only by ETag (ls is cheap)
            digest = resolve_by_etag(version, candidates)
            if digest is None and i == 0:
                result = links.resolve(current, version, candidates)
                if isinstance(result, Digest):
                    digest = result
                else:
                    entry.problem = f"current link unreadable: {result}"
            if digest is not None:
                history.setdefault(digest)
                if i == 0:
                    entry.digest = digest
    # index entries name every digest the tag pointed at, newest first by first write
    for digest, index_history in sorted(
        tag.index.items(), key=lambda kv: kv[1].first_written or EPOCH, reverse=True
    ):
        if index_history.first_written is not None:
            history.setdefault(digest)
    entry.history = list(history)
    return entry


def build_listing(
    reader: RegistryStore,
    inventory: Inventory,
    layout: RegistryLayout,
    *,
    repository: str | None = None,
    workers: int = 8,
) -> Listing:
    model = RegistryModel(inventory, layout)
    links = LinkReader(reader)
    names = [repository] if repository else model.repository_names()
    repos: list[RepositoryEntry] = []
    for name in names:
        repo = model.repositories.get(name)
        if repo is None:
            continue
        tags = [_tag_entry(links, repo, repo.tags[t]) for t in sorted(repo.tags)]
        repos.append(RepositoryEntry(name, repo.deleted, tags))

    # media types: one GET per distinct current manifest, in parallel
    wanted = {t.digest for r in repos for t in r.tags if t.digest is not None and not t.deleted}
    media: dict[Digest, str] = {}

    def fetch(digest: Digest) -> tuple[Digest, str]:
        try:
            body = reader.get_bytes(layout.key(BlobData(digest)), max_bytes=MAX_MANIFEST_BYTES)
            return digest, parse_manifest(body).media_type
        except ObjectMissing:
            return digest, "missing"
        except (ManifestError, ObjectTooLarge):
            return digest, "unparseable"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for digest, media_type in pool.map(fetch, sorted(wanted)):
            media[digest] = media_type
    for r in repos:
        for t in r.tags:
            if t.digest is not None and not t.deleted:
                t.media_type = media.get(t.digest)
    return Listing(repos, inventory.object_versions, inventory.delete_markers)


def listing_document(
    listing: Listing, bucket: str, layout: RegistryLayout, s3_requests: int
) -> dict[str, Any]:
    """The JSON shape of ``regvault ls`` (CLI and Lambda)."""
    return {
        "bucket": bucket,
        "root": layout.root,
        "repositories": [r.as_dict() for r in listing.repositories],
        "summary": {
            "repositories": len(listing.repositories),
            "tags": sum(len(r.tags) for r in listing.repositories),
            "object_versions": listing.object_versions,
            "delete_markers": listing.delete_markers,
            "s3_requests": s3_requests,
        },
    }


def list_registry(
    store: RegistryStore,
    layout: RegistryLayout,
    repository: str | None = None,
    *,
    page_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> Listing:
    """Walk the repositories (or one repository) and build the listing."""
    if repository is not None:
        validate_repository(repository)
        prefix = layout.repository_prefix(repository)
    else:
        prefix = layout.repositories_prefix
    inventory = walk(store, prefix, page_size=page_size, progress=progress, scratch=layout.upload_group)
    if not len(inventory):
        raise layout.no_registry(store.bucket, repository)
    return build_listing(store, inventory, layout, repository=repository)
