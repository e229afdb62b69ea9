"""Housekeeping: what garbage collection and upload expiry would act on — orphan blobs, overwritten
blobs, stale uploads — and unrecognised keys. ``referenced_digests`` is GC's mark phase, read-only."""

from __future__ import annotations

from datetime import datetime

from regvault.audit.findings import Finding
from regvault.images.sources import ManifestSource, is_live
from regvault.storage.digest import Digest
from regvault.storage.model import RegistryModel


def referenced_digests(model: RegistryModel, manifests: ManifestSource) -> set[Digest]:
    """Every blob reachable from a live revision link of any repository (what GC marks).

    A referrer (a manifest with a ``subject``) keeps itself and what it references, not its subject."""
    referenced: set[Digest] = set()
    pending = [d for repo in model.repositories.values() for d, h in repo.revisions.items() if is_live(h)]
    while pending:
        digest = pending.pop()
        if digest in referenced:
            continue
        referenced.add(digest)
        read = manifests.current(digest)
        if read is None or read.manifest is None:
            continue
        pending += [c.digest for c in read.manifest.children]
        referenced.update(b.digest for b in read.manifest.blobs)
    return referenced


def housekeeping(model: RegistryModel, referenced: set[Digest], cutoff: datetime) -> list[Finding]:
    """Findings about objects no image needs; anything written after ``cutoff`` may be a push in flight."""
    layout = model.layout
    out: list[Finding] = []
    for digest, history in model.blobs.items():
        current = history.current
        if current is None:
            continue
        if len(history.data_versions) > 1 and len({(v.size, v.etag) for v in history.data_versions}) > 1:
            overwrites = len(history.data_versions) - 1
            message = f"blob {digest.short} was overwritten {overwrites} time(s); run --deep to verify it"
            out.append(Finding.at_key("BLOB_OVERWRITTEN", message, history.key, digest))
        if digest not in referenced and current.last_modified < cutoff:
            message = f"blob {digest.short} ({current.size} bytes) is referenced by no manifest"
            out.append(Finding.at_key("ORPHAN_BLOB", message, history.key, digest, recoverable=True))
    for repo in model.repositories.values():
        newest: dict[str, datetime | None] = {u: s.newest_live for u, s in repo.upload_summaries.items()}
        for upload_id, histories in repo.uploads.items():
            times = [h.current.last_modified for h in histories if h.current is not None]
            newest[upload_id] = max(times) if times else None
        for upload_id, newest_live in sorted(newest.items()):
            if newest_live is not None and newest_live < cutoff:
                out.append(
                    Finding(
                        "STALE_UPLOAD",
                        f"upload {upload_id} in {repo.name} untouched since before the grace window",
                        repository=repo.name,
                        key=layout.upload_prefix(repo.name, upload_id),
                        recoverable=None,
                    )
                )
    for entry in model.unknown:
        if entry.history.current is not None:
            out.append(
                Finding("UNKNOWN_KEY", f"unrecognised key: {entry.entity.reason}", key=entry.history.key)
            )
    return out
