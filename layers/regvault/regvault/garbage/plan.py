"""The sweep plan: what the mark did not keep, older than the grace window, as delete markers to write.

Blobs (layers, configs, manifests) no kept manifest needs; with ``delete_untagged`` also the revision
links of the manifests a repository no longer keeps and the tag index entries that only pointed at them.
Every item names the version its delete marker will hide: ``--undo`` copies exactly that one forward.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regvault.garbage.mark import Marked
from regvault.images.sources import is_live
from regvault.storage.digest import Digest
from regvault.storage.layout import RevisionLink, TagIndexLink
from regvault.storage.model import RegistryModel

BLOB, MANIFEST, REVISION_LINK, TAG_INDEX_LINK = "blob", "manifest", "revision-link", "tag-index-link"


@dataclass(frozen=True, slots=True)
class Sweep:
    key: str
    version_id: str  # the version the delete marker hides
    kind: str
    digest: Digest
    size: int
    repositories: tuple[str, ...]  # the repositories that link it (a shared blob names them all)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "version_id": self.version_id,
            "kind": self.kind,
            "digest": str(self.digest),
            "size": self.size,
            "repositories": list(self.repositories),
        }


@dataclass
class GcPlan:
    sweeps: list[Sweep] = field(default_factory=list)
    kept_manifests: int = 0
    kept_blobs: int = 0

    def summary(self) -> dict[str, int]:
        kinds = [s.kind for s in self.sweeps]
        return {
            "blobs": kinds.count(BLOB),
            "manifests": kinds.count(MANIFEST),
            "links": kinds.count(REVISION_LINK) + kinds.count(TAG_INDEX_LINK),
            "bytes": sum(s.size for s in self.sweeps if s.kind in (BLOB, MANIFEST)),
            "kept_manifests": self.kept_manifests,
            "kept_blobs": self.kept_blobs,
        }

    def by_repository(self) -> dict[str, dict[str, int]]:
        """Objects and bytes per repository; a blob several repositories link counts in each of them."""
        out: dict[str, dict[str, int]] = {}
        for s in self.sweeps:
            for name in s.repositories or ("(none)",):
                row = out.setdefault(name, {"objects": 0, "bytes": 0})
                row["objects"] += 1
                row["bytes"] += s.size if s.kind in (BLOB, MANIFEST) else 0
        return dict(sorted(out.items()))


def plan_sweep(model: RegistryModel, marked: Marked, *, delete_untagged: bool, cutoff: datetime) -> GcPlan:
    layout = model.layout
    linked_by: dict[Digest, list[str]] = {}
    manifests: set[Digest] = set()
    for name in model.repository_names():
        repo = model.repositories[name]
        for digest, history in (*repo.layers.items(), *repo.revisions.items()):
            if is_live(history) and name not in linked_by.setdefault(digest, []):
                linked_by[digest].append(name)
        manifests.update(repo.revisions)
    plan = GcPlan(kept_manifests=sum(len(k) for k in marked.manifests.values()), kept_blobs=len(marked.blobs))
    for digest, history in sorted(model.blobs.items()):
        current = history.current
        if current is None or digest in marked.blobs or current.last_modified >= cutoff:
            continue
        kind = MANIFEST if digest in manifests else BLOB
        repos = tuple(linked_by.get(digest, ()))
        plan.sweeps.append(Sweep(history.key, current.version_id, kind, digest, current.size, repos))
    if not delete_untagged:
        return plan
    for name in model.repository_names():
        repo, kept = model.repositories[name], marked.manifests.get(name, set())
        for digest, history in sorted(repo.revisions.items()):
            current = history.current
            if current is not None and digest not in kept and current.last_modified < cutoff:
                key = layout.key(RevisionLink(name, digest))
                plan.sweeps.append(
                    Sweep(key, current.version_id, REVISION_LINK, digest, current.size, (name,))
                )
        for tag_name, tag in sorted(repo.tags.items()):
            for digest, history in sorted(tag.index.items()):
                current = history.current
                if current is not None and digest not in kept and current.last_modified < cutoff:
                    key = layout.key(TagIndexLink(name, tag_name, digest))
                    plan.sweeps.append(
                        Sweep(key, current.version_id, TAG_INDEX_LINK, digest, current.size, (name,))
                    )
    return plan
