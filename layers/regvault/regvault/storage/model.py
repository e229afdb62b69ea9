"""The inventory indexed by registry entities: repositories, tags, links, blobs, uploads.

Built from an ``Inventory`` and a ``RegistryLayout`` without any S3 request. Audit, history, restore
and ``ls`` all read the registry through this view.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from regvault.storage.digest import Digest
from regvault.storage.inventory import Inventory, KeyHistory, ObjectVersion, ScratchSummary
from regvault.storage.layout import (
    BlobData,
    LayerLink,
    RegistryLayout,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    UnknownKey,
    UploadObject,
)

LINK_SIZES = {"sha256": 71, "sha384": 103, "sha512": 135}


@dataclass
class TagKeys:
    name: str
    current: KeyHistory | None = None
    index: dict[Digest, KeyHistory] = field(default_factory=dict)

    @property
    def deleted(self) -> bool:
        return self.current is None or self.current.deleted


@dataclass
class RepositoryKeys:
    name: str
    layers: dict[Digest, KeyHistory] = field(default_factory=dict)
    revisions: dict[Digest, KeyHistory] = field(default_factory=dict)
    tags: dict[str, TagKeys] = field(default_factory=dict)
    uploads: dict[str, list[KeyHistory]] = field(default_factory=dict)
    upload_summaries: dict[str, ScratchSummary] = field(default_factory=dict)  # folded by the inventory

    def tag(self, name: str) -> TagKeys:
        keys = self.tags.get(name)
        if keys is None:
            keys = self.tags[name] = TagKeys(name)
        return keys

    @property
    def deleted(self) -> bool:
        """True when every key of the repository's manifests and layers is delete-marked."""
        histories: list[KeyHistory] = [*self.layers.values(), *self.revisions.values()]
        for tag in self.tags.values():
            histories += [h for h in (tag.current, *tag.index.values()) if h is not None]
        return all(h.deleted for h in histories)


@dataclass(frozen=True, slots=True)
class UnknownEntry:
    history: KeyHistory
    entity: UnknownKey


class RegistryModel:
    def __init__(self, inventory: Inventory, layout: RegistryLayout) -> None:
        self.inventory = inventory
        self.layout = layout
        self.repositories: dict[str, RepositoryKeys] = {}
        self.blobs: dict[Digest, KeyHistory] = {}
        self.unknown: list[UnknownEntry] = []
        self._digests: dict[Digest, Digest] = {}
        for history in inventory:
            self._index(history)
        self._index_scratch(inventory)

    def absorb(self, part: Inventory) -> None:
        """Add a disjoint part of the bucket (e.g. blob keys listed one by one) to the model."""
        self.inventory.merge(part)
        for history in part:
            self._index(history)
        self._index_scratch(part)

    def _index_scratch(self, inventory: Inventory) -> None:
        for (repository, upload_id), summary in inventory.scratch.items():
            self._repo(repository).upload_summaries[upload_id] = summary

    def _repo(self, name: str) -> RepositoryKeys:
        repo = self.repositories.get(name)
        if repo is None:
            repo = self.repositories[name] = RepositoryKeys(name)
        return repo

    def _index(self, history: KeyHistory) -> None:
        entity = self.layout.parse(history.key)
        digest = getattr(entity, "digest", None)
        if digest is not None:  # one Digest per distinct digest: a layer is linked from many repositories
            canonical = self._digests.setdefault(digest, digest)
            if canonical is not digest:
                entity = replace(entity, digest=canonical)  # type: ignore[arg-type,type-var]
        match entity:
            case BlobData(digest=d):
                self.blobs[d] = history
            case LayerLink(repository=r, digest=d):
                self._repo(r).layers[d] = history
            case RevisionLink(repository=r, digest=d):
                self._repo(r).revisions[d] = history
            case TagCurrentLink(repository=r, tag=t):
                self._repo(r).tag(t).current = history
            case TagIndexLink(repository=r, tag=t, digest=d):
                self._repo(r).tag(t).index[d] = history
            case UploadObject(repository=r, upload_id=u):
                self._repo(r).uploads.setdefault(u, []).append(history)
            case UnknownKey():
                self.unknown.append(UnknownEntry(history, entity))

    def repository_names(self) -> list[str]:
        return sorted(self.repositories)


def link_candidates(repo: RepositoryKeys, tag: TagKeys | None = None) -> Candidates:
    """Digests a tag link in this repository can plausibly hold (its index entries, then revisions)."""
    seen: dict[Digest, None] = {}
    if tag is not None:
        seen.update(dict.fromkeys(tag.index))
    seen.update(dict.fromkeys(repo.revisions))
    return Candidates(seen)


_ETAG_OF: dict[Digest, str] = {}  # a pure memo: a digest's link body, so its MD5, never changes


def _link_etag(digest: Digest) -> str:
    etag = _ETAG_OF.get(digest)
    if etag is None:
        etag = _ETAG_OF[digest] = digest.link_etag()
    return etag


class Candidates(list[Digest]):
    """``link_candidates``' answer, which also finds a candidate by the ETag of its link body in one
    lookup (a tag's history resolves every version of its link against the same candidates: hashing
    each candidate again per version was quadratic in pushes per repository)."""

    _index: dict[str, Digest] | None = None

    def by_etag(self, etag: str) -> Digest | None:
        if self._index is None:
            self._index = {}
            for digest in self:
                self._index.setdefault(_link_etag(digest), digest)
        return self._index.get(etag)


def resolve_by_etag(version: ObjectVersion, candidates: Iterable[Digest]) -> Digest | None:
    """Which digest a link version holds, from its ETag alone (MD5 of the 71-byte body).

    Works for single-part uploads without SSE-KMS, which is how the registry writes links; returns
    None when no candidate matches, and the caller reads the object instead.
    """
    if version.is_delete_marker or not version.etag or "-" in version.etag:
        return None
    if isinstance(candidates, Candidates):
        hit = candidates.by_etag(version.etag)
    else:
        hit = next((d for d in candidates if _link_etag(d) == version.etag), None)
    if hit is not None and version.size == LINK_SIZES.get(hit.algorithm):
        return hit
    return None
