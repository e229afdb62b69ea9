"""``regvault gc`` (and, later, its Lambda): read the bucket, mark, plan the sweep."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from regvault.errors import InvalidInput
from regvault.garbage.mark import Marked, mark
from regvault.garbage.plan import GcPlan, plan_sweep
from regvault.images.sources import LinkReader, ManifestSource, is_live
from regvault.storage.inventory import walk
from regvault.storage.layout import RegistryLayout
from regvault.storage.model import RegistryModel
from regvault.storage.store import RegistryStore

DEFAULT_GRACE = timedelta(hours=2)


@dataclass(frozen=True)
class GcRequest:
    delete_untagged: bool = False
    grace: timedelta = DEFAULT_GRACE
    workers: int = 8
    page_size: int = 1000
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.grace < timedelta(0):
            raise InvalidInput("the grace window cannot be negative")
        if not 1 <= self.workers <= 64:
            raise InvalidInput("workers must be between 1 and 64")
        if not 1 <= self.page_size <= 1000:
            raise InvalidInput("page size must be between 1 and 1000")


@dataclass
class GcOutcome:
    plan: GcPlan
    marked: Marked
    model: RegistryModel
    started: datetime  # when the mark began: what was written since is read again before a sweep


def plan_gc(store: RegistryStore, layout: RegistryLayout, request: GcRequest) -> GcOutcome:
    """Mark and plan; writes nothing."""
    started = datetime.now(UTC)
    inventory = walk(
        store,
        layout.prefix,
        page_size=request.page_size,
        scratch=layout.upload_group,
        skip_scratch=layout.scratch_folder,
    )
    if not len(inventory):
        raise layout.no_registry(store.bucket)
    model = RegistryModel(inventory, layout)
    manifests = ManifestSource(store, model)
    live = {d for r in model.repositories.values() for d, h in r.revisions.items() if is_live(h)}
    manifests.prefetch(live, request.workers)
    children = {
        c.digest for read in list(manifests.cache.values()) if read.manifest for c in read.manifest.children
    }
    manifests.prefetch(children, request.workers)
    cutoff = request.now - request.grace
    marked = mark(model, manifests, LinkReader(store), delete_untagged=request.delete_untagged, cutoff=cutoff)
    plan = plan_sweep(model, marked, delete_untagged=request.delete_untagged, cutoff=cutoff)
    return GcOutcome(plan, marked, model, started)
