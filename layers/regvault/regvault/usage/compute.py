"""Usage from one listing and the manifests: no other reads.

Per repository: ``live`` bytes (every blob its live tags' closures reference, manifests included),
``unique`` (referenced live by no other repository), ``shared`` (the rest, each blob's size divided
among the repositories that use it, so the rows add up to the total live bytes) and ``history_only``
(blobs only its earlier images keep: not live anywhere, still stored in some version).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from regvault.images.closure import tag_pointers
from regvault.images.sources import LinkReader, ManifestSource, is_live
from regvault.storage.digest import Digest
from regvault.storage.inventory import KeyHistory
from regvault.storage.model import RegistryModel, link_candidates


@dataclass
class RepositoryUsage:
    live: set[Digest] = field(default_factory=set)
    history: set[Digest] = field(default_factory=set)


def _closure(manifests: ManifestSource, digest: Digest, out: set[Digest], historical: bool) -> None:
    if digest in out:
        return
    out.add(digest)
    read = manifests.best_recoverable(digest) if historical else manifests.current(digest)
    if read is None or read.manifest is None:
        return
    out.update(b.digest for b in read.manifest.blobs)
    for child in read.manifest.children:
        _closure(manifests, child.digest, out, historical)


def _size(history: KeyHistory | None) -> int:
    if history is None:
        return 0
    data = history.data_versions
    return data[0].size if data else 0


def repository_usage(
    model: RegistryModel, manifests: ManifestSource, links: LinkReader
) -> dict[str, RepositoryUsage]:
    out: dict[str, RepositoryUsage] = {}
    for name in model.repository_names():
        repo, usage = model.repositories[name], RepositoryUsage()
        for tag in repo.tags.values():
            current = tag.current.current if tag.current is not None else None
            if current is not None and tag.current is not None:
                target = links.resolve(tag.current, current, link_candidates(repo, tag))
                if isinstance(target, Digest):
                    _closure(manifests, target, usage.live, historical=False)
            for digest, _ in tag_pointers(links, repo, tag):
                _closure(manifests, digest, usage.history, historical=True)
        for digest, history in repo.revisions.items():
            if not is_live(history):
                _closure(manifests, digest, usage.history, historical=True)
        out[name] = usage
    return out


def noncurrent_within(history: KeyHistory, now: datetime, days: int | None) -> int:
    """Bytes of the key's noncurrent data versions a window of ``days`` keeps (None: all of them). A
    version is noncurrent from the moment the next newer version (or delete marker) was written."""
    total = 0
    for newer, version in zip(history.versions, history.versions[1:], strict=False):
        if version.is_delete_marker:
            continue
        if days is None or now - newer.last_modified <= timedelta(days=days):
            total += version.size
    return total


def usage_document(
    model: RegistryModel,
    repositories: dict[str, RepositoryUsage],
    referenced: set[Digest],
    now: datetime,
    what_if_days: int | None,
) -> dict[str, Any]:
    inventory = model.inventory
    current = (
        sum(h.current.size for h in inventory if h.current is not None) + inventory.scratch_bytes_current
    )
    noncurrent = sum(noncurrent_within(h, now, None) for h in inventory) + inventory.scratch_bytes_noncurrent
    users: dict[Digest, int] = {}
    for usage in repositories.values():
        for digest in usage.live:
            users[digest] = users.get(digest, 0) + 1
    live_anywhere = set(users)
    rows = {}
    for name, usage in repositories.items():
        sizes = {d: _size(model.blobs.get(d)) for d in usage.live | usage.history}
        rows[name] = {
            "live_bytes": sum(sizes[d] for d in usage.live),
            "unique_bytes": sum(sizes[d] for d in usage.live if users[d] == 1),
            "shared_bytes": round(sum(sizes[d] / users[d] for d in usage.live if users[d] > 1)),
            "history_only_bytes": sum(sizes[d] for d in usage.history - live_anywhere),
            "live_blobs": len(usage.live),
        }
    orphans = [h for d, h in model.blobs.items() if h.current is not None and d not in referenced]
    doc: dict[str, Any] = {
        "totals": {
            "stored_current_bytes": current,
            "stored_noncurrent_bytes": noncurrent,
            "upload_scratch_bytes": inventory.scratch_bytes_current + inventory.scratch_bytes_noncurrent,
            "orphan_blob_bytes": sum(h.current.size for h in orphans if h.current is not None),
            "live_bytes": sum(_size(model.blobs.get(d)) for d in live_anywhere),
            "repositories": len(repositories),
            "blobs": sum(1 for h in model.blobs.values() if h.current is not None),
            "object_versions": inventory.object_versions,
        },
        "repositories": rows,
    }
    if what_if_days is not None:
        kept = sum(noncurrent_within(h, now, what_if_days) for h in inventory)
        cutoff = (now - timedelta(days=what_if_days)).date().toordinal()
        kept += sum(size for day, size in inventory.scratch_noncurrent_by_day.items() if day >= cutoff)
        doc["what_if"] = {"recovery_days": what_if_days, "stored_noncurrent_bytes": kept}
    return doc
