"""The mark phase: what every repository keeps, from the bucket's current state.

A repository keeps its live revisions (distribution's default), or with ``delete_untagged`` only what
its live tags point at; in both cases, recursively, an index's children, every manifest whose OCI
``subject`` is a kept manifest (signatures, SBOMs: referrers), and anything written within the grace
window (a push in flight is not garbage). The blobs kept are the kept manifests' own blobs and their
configs and layers, in any repository.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from regvault.images.sources import LinkReader, ManifestSource, is_live
from regvault.storage.digest import Digest
from regvault.storage.model import RegistryModel, RepositoryKeys, link_candidates


@dataclass
class Marked:
    manifests: dict[str, set[Digest]] = field(default_factory=dict)  # repository -> kept manifests
    blobs: set[Digest] = field(default_factory=set)  # every blob a kept manifest needs, its own included
    why: dict[tuple[str, Digest], str] = field(default_factory=dict)  # (repository, manifest) -> reason


def _written_since(repo: RepositoryKeys, digest: Digest, cutoff: datetime) -> bool:
    history = repo.revisions.get(digest)
    current = history.current if history is not None else None
    return current is not None and current.last_modified >= cutoff


def _roots(
    repo: RepositoryKeys, links: LinkReader, delete_untagged: bool, cutoff: datetime
) -> dict[Digest, str]:
    live = [d for d, h in repo.revisions.items() if is_live(h)]
    if not delete_untagged:
        return dict.fromkeys(live, "linked by the repository")
    roots: dict[Digest, str] = {}
    for name, tag in sorted(repo.tags.items()):
        if tag.current is None or tag.current.current is None:
            continue
        target = links.resolve(tag.current, tag.current.current, link_candidates(repo, tag))
        if isinstance(target, Digest):
            roots.setdefault(target, f"tag {name}")
    for digest in live:
        if _written_since(repo, digest, cutoff):
            roots.setdefault(digest, "written within the grace window")
    return roots


def mark(
    model: RegistryModel,
    manifests: ManifestSource,
    links: LinkReader,
    *,
    delete_untagged: bool,
    cutoff: datetime,
) -> Marked:
    marked = Marked()
    for name in model.repository_names():
        repo = model.repositories[name]
        kept: set[Digest] = set()
        pending = list(_roots(repo, links, delete_untagged, cutoff).items())
        live = [d for d, h in repo.revisions.items() if is_live(h)]
        while True:
            while pending:
                digest, why = pending.pop()
                if digest in kept:
                    continue
                kept.add(digest)
                marked.why[(name, digest)] = why
                marked.blobs.add(digest)
                read = manifests.current(digest)
                if read is None or read.manifest is None:
                    continue
                marked.blobs.update(b.digest for b in read.manifest.blobs)
                pending += [(c.digest, f"child of {digest.short}") for c in read.manifest.children]
            # referrers of what is kept, until nothing new is found
            for digest in live:
                if digest in kept:
                    continue
                read = manifests.current(digest)
                subject = read.manifest.subject if read is not None and read.manifest is not None else None
                if subject is not None and subject.digest in kept:
                    pending.append((digest, f"refers to {subject.digest.short}"))
            if not pending:
                break
        marked.manifests[name] = kept
    return marked
