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


def link_candidates(repo: RepositoryKeys, tag: TagKeys | None = None) -> list[Digest]:
    """Digests a tag link in this repository can plausibly hold (its index entries, then revisions)."""
    seen: dict[Digest, None] = {}
    if tag is not None:
        seen.update(dict.fromkeys(tag.index))
    seen.update(dict.fromkeys(repo.revisions))
    return list(seen)


def resolve_by_etag(version: ObjectVersion, candidates: Iterable[Digest]) -> Digest | None:
    """Which digest a link version holds, from its ETag alone (MD5 of the 71-byte body).

    Works for single-part uploads without SSE-KMS, which is how the registry writes links; returns
    None when no candidate matches, and the caller reads the object instead.
    """
    if version.is_delete_marker or not version.etag or "-" in version.etag:
        return None
    for digest in candidates:
        if version.size == LINK_SIZES.get(digest.algorithm) and version.etag == digest.link_etag():
            return digest
    return None
