"""``regvault gc`` (and, later, its Lambda): read the bucket, mark, plan the sweep, apply it, undo it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from regvault.errors import InvalidInput
from regvault.garbage.apply import apply_gc, apply_undo, new_run_id, plan_undo, read_run
from regvault.garbage.mark import Marked, mark
from regvault.garbage.plan import GcPlan, plan_sweep
from regvault.images.sources import LinkReader, ManifestSource
from regvault.storage.inventory import walk
from regvault.storage.layout import RegistryLayout
from regvault.storage.model import RegistryModel
from regvault.storage.store import ObjectStore, RegistryStore

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
    manifests.prefetch_live(request.workers)
    cutoff = request.now - request.grace
    marked = mark(model, manifests, LinkReader(store), delete_untagged=request.delete_untagged, cutoff=cutoff)
    plan = plan_sweep(model, marked, delete_untagged=request.delete_untagged, cutoff=cutoff)
    return GcOutcome(plan, marked, model, started)


@dataclass
class GcResult:
    run_id: str | None  # None: a plan, nothing written
    applied: bool
    plan: GcPlan
    resurrected: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "applied": self.applied,
            "summary": self.plan.summary(),
            "repositories": self.plan.by_repository(),
            "objects": [s.as_dict() for s in self.plan.sweeps],
            "resurrected": self.resurrected,
        }


def collect_garbage(
    store: RegistryStore, layout: RegistryLayout, request: GcRequest, *, apply: bool
) -> GcResult:
    """``regvault gc``: the plan; with ``apply``, the sweep under the lease with a run record."""
    outcome = plan_gc(store, layout, request)
    if not apply:
        return GcResult(None, False, outcome.plan)
    run_id = new_run_id(request.now)
    options = {
        "delete_untagged": request.delete_untagged,
        "grace_hours": request.grace.total_seconds() / 3600,
    }

    def remark() -> Marked:
        return plan_gc(store, layout, replace(request, now=datetime.now(UTC))).marked

    run = apply_gc(store, layout, outcome.plan, run_id, options, remark, workers=request.workers)
    return GcResult(run_id, True, outcome.plan, run.resurrected)


def undo_garbage(store: RegistryStore, layout: RegistryLayout, run_id: str, *, apply: bool) -> dict[str, Any]:
    """``regvault gc --undo RUN_ID``: what copying the run's swept versions forward would do, or does."""
    run = read_run(store, layout, run_id)
    planned = plan_undo(store, run)
    copied = apply_undo(store, layout, run) if apply else []
    return {
        "run_id": run.run_id,
        "applied": apply,
        "objects": [
            {"key": item["key"], "version_id": item["version_id"], "action": a} for item, a in planned
        ],
        "restored": copied,
        "summary": {a: sum(1 for _, x in planned if x == a) for a in ("restore", "restored", "changed")},
    }


def publish_gc(doc: dict[str, Any], sink: ObjectStore, bucket: str, root: str, now: datetime) -> str:
    """Write a GC plan or run to the reports bucket (``gc/<bucket>/<root>/<stamp>.json`` and
    ``latest.json``); returns its s3:// address."""
    prefix = f"gc/{bucket}/{root.replace('/', '_') or '_'}/"
    key = f"{prefix}{now:%Y/%m/%d/%H%M%SZ}.json"
    body = json.dumps(doc, indent=2).encode()
    sink.put_bytes(key, body, "application/json")
    sink.put_bytes(f"{prefix}latest.json", body, "application/json")
    return f"s3://{sink.bucket}/{key}"
