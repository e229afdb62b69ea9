"""Tag history: every digest each tag pointed at, newest first, and whether its image can be restored."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regvault.errors import NoRegistryFound
from regvault.images.closure import Planner, tag_pointers
from regvault.restore.scoped import ScopedModel
from regvault.restore.targets import current_state
from regvault.storage.layout import RegistryLayout
from regvault.storage.reference import validate_repository, validate_tag
from regvault.storage.store import RegistryStore

if TYPE_CHECKING:
    from regvault.journal.record import Journal


def tag_history(
    store: RegistryStore,
    layout: RegistryLayout,
    repository: str,
    tag: str | None,
    journal: Journal | None = None,
) -> dict[str, Any]:
    """Every digest each tag pointed at, newest first, with whether its image can be restored, and with
    a push ``journal``, who set it (``by``; None when the journal has no push of it)."""
    validate_repository(repository)
    if tag is not None:
        validate_tag(tag)
    scoped = ScopedModel(store, layout, repository)
    names = [tag] if tag is not None else sorted(scoped.repo.tags)
    if tag is not None and tag not in scoped.repo.tags:
        raise NoRegistryFound(f"no tag {repository}:{tag} in this bucket (not even deleted)")
    pointers = {name: tag_pointers(scoped.links, scoped.repo, scoped.repo.tags[name]) for name in names}
    scoped.load_images(d for entries in pointers.values() for d, _ in entries)
    planner = Planner(scoped.model, scoped.manifests, scoped.links)
    tags = []
    for name in names:
        current, _ = current_state(scoped, name)
        keys = scoped.repo.tags[name]
        entries = []
        for digest, when in pointers[name]:
            image = planner.image(repository, digest, name)
            entries.append(
                {
                    "digest": str(digest),
                    "at": when.isoformat() if when else None,
                    "current": digest == current,
                    "media_type": image.media_type,
                    "size": image.size,
                    "recoverable": image.recoverable,
                    "missing": [layout.relative(n.key) for n in image.missing],
                    "by": journal.actor_of(repository, name, str(digest)) if journal else None,
                }
            )
        tags.append(
            {
                "repository": repository,
                "tag": name,
                "state": "deleted" if keys.deleted else "live",
                "history": entries,
            }
        )
    return {"bucket": store.bucket, "root": layout.root, "tags": tags, "s3_requests": store.requests.total}
