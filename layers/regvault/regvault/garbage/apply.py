"""Apply a GC plan online, and undo it.

Under the lease, the run record is written first (so a run that dies half-way still says what it did),
then a delete marker per item — links first, so the registry stops listing a manifest before its blob
goes, then manifests, then blobs. The registry keeps serving: afterwards the bucket is marked again, and
any swept object that something written meanwhile needs (a push that mounted a swept layer, a tag moved
onto an untagged manifest) is copied forward at once, if its key still ends in our marker. The undo
copies every swept version forward whose key still ends in the marker this run wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regvault.errors import InvalidInput, ObjectMissing
from regvault.garbage.mark import Marked
from regvault.garbage.plan import BLOB, MANIFEST, GcPlan
from regvault.storage.layout import RegistryLayout
from regvault.storage.lease import release_lease, take_lease
from regvault.storage.store import RegistryStore

RECORD_EVERY = 500  # delete markers between two writes of the run record
ORDER = {"tag-index-link": 0, "revision-link": 1, MANIFEST: 2, BLOB: 3}
MAX_REMARKS = 4  # an index, its children, their blobs: each round brings back one level


@dataclass
class GcRun:
    run_id: str
    started_at: str
    options: dict[str, Any]
    swept: list[dict[str, Any]] = field(default_factory=list)  # sweep + "marker"
    resurrected: list[str] = field(default_factory=list)  # keys copied forward after a racing write
    status: str = "sweeping"
    undone: list[str] = field(default_factory=list)

    def dumps(self) -> bytes:
        return json.dumps(self.__dict__, indent=1).encode()

    @classmethod
    def loads(cls, body: bytes, where: str) -> GcRun:
        try:
            doc = json.loads(body)
            return cls(**{k: doc[k] for k in cls.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInput(f"{where} is not a gc run record: {exc}") from None


class Needs:
    """What a fresh mark keeps, as the strings a run record holds (one lookup per swept item)."""

    def __init__(self, marked: Marked) -> None:
        self.blobs = {str(d) for d in marked.blobs}
        self.manifests = {(repo, str(d)) for repo, kept in marked.manifests.items() for d in kept}

    def __call__(self, item: dict[str, Any]) -> bool:
        if item["kind"] in (BLOB, MANIFEST):
            return str(item["digest"]) in self.blobs
        return any((repo, str(item["digest"])) in self.manifests for repo in item["repositories"])


def apply_gc(
    store: RegistryStore,
    layout: RegistryLayout,
    plan: GcPlan,
    run_id: str,
    options: dict[str, Any],
    remark: Callable[[], Marked],
    now: datetime | None = None,
    workers: int = 8,
) -> GcRun:
    """Sweep ``plan`` under the lease; ``remark`` marks the bucket again after the sweep."""
    now = now or datetime.now(UTC)
    lease = take_lease(store, layout, run_id, "gc", now)
    run = GcRun(run_id, now.isoformat(), options)
    key = layout.gc_run_key(run_id)
    try:
        store.put_bytes(key, run.dumps(), "application/json")
        # links, then manifests, then blobs (a phase after the other); within a phase ``workers`` delete
        # markers at a time, the run record rewritten after every chunk of them
        from concurrent.futures import ThreadPoolExecutor

        ordered = sorted(plan.sweeps, key=lambda s: (ORDER[s.kind], s.key))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for rank in sorted({ORDER[s.kind] for s in ordered}):
                phase = [s for s in ordered if ORDER[s.kind] == rank]
                for start in range(0, len(phase), RECORD_EVERY):
                    chunk = phase[start : start + RECORD_EVERY]
                    markers = list(pool.map(lambda s: store.add_delete_marker(s.key), chunk))
                    run.swept += [{**s.as_dict(), "marker": m} for s, m in zip(chunk, markers, strict=True)]
                    store.put_bytes(key, run.dumps(), "application/json")
        # mark again until nothing more comes back: a manifest copied back names the blobs it needs
        for _ in range(MAX_REMARKS):
            needed, already = Needs(remark()), set(run.resurrected)
            back = [
                item
                for item in run.swept
                if item["key"] not in already
                and needed(item)
                and store.latest_version_id(item["key"]) == item["marker"]
            ]
            for item in back:
                store.copy_version(item["key"], item["key"], item["version_id"], item["size"])
                run.resurrected.append(item["key"])
            if not back:
                break
        run.status = "done"
        store.put_bytes(key, run.dumps(), "application/json")
    finally:
        release_lease(store, layout, lease)
    return run


def read_run(store: RegistryStore, layout: RegistryLayout, run_id: str) -> GcRun:
    key = layout.gc_run_key(check_run_id(run_id))
    try:
        body = store.get_bytes(key, max_bytes=256 * 1024 * 1024)
    except ObjectMissing:
        raise InvalidInput(
            f"no gc run {run_id!r} in s3://{store.bucket}/{key} (check --bucket and --root)"
        ) from None
    return GcRun.loads(body, f"s3://{store.bucket}/{key}")


def plan_undo(store: RegistryStore, run: GcRun, workers: int = 8) -> list[tuple[dict[str, Any], str]]:
    """Each swept item with what the undo does: "restore" (its key still ends in this run's marker),
    "restored" (copied forward already) or "changed" (written since: left alone). One listing request
    per key not copied back yet, ``workers`` at a time."""
    from concurrent.futures import ThreadPoolExecutor

    back = set(run.resurrected) | set(run.undone)

    def action(item: dict[str, Any]) -> str:
        if item["key"] in back:
            return "restored"
        return "restore" if store.latest_version_id(item["key"]) == item["marker"] else "changed"

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(zip(run.swept, pool.map(action, run.swept), strict=True))


def apply_undo(
    store: RegistryStore, layout: RegistryLayout, run: GcRun, now: datetime | None = None
) -> list[str]:
    now = now or datetime.now(UTC)
    lease = take_lease(store, layout, run.run_id, "gc-undo", now)
    copied: list[str] = []
    try:
        # blobs first, links last (one kind after the other, each kind in parallel): an image is whole
        # again before the registry lists it
        from concurrent.futures import ThreadPoolExecutor

        planned = [item for item, action in plan_undo(store, run) if action == "restore"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for rank in sorted({ORDER[item["kind"]] for item in planned}, reverse=True):
                batch = [item for item in planned if ORDER[item["kind"]] == rank]
                results = pool.map(
                    lambda i: store.copy_version(i["key"], i["key"], i["version_id"], i["size"]), batch
                )
                for item, _ in zip(batch, results, strict=True):
                    copied.append(item["key"])
        run.undone += copied
        run.status = "undone"
        store.put_bytes(layout.gc_run_key(run.run_id), run.dumps(), "application/json")
    finally:
        release_lease(store, layout, lease)
    return copied


def check_run_id(run_id: str) -> str:
    import re

    if not re.fullmatch(r"gc-\d{8}T\d{6}Z-[0-9a-f]{6}", run_id or ""):
        raise InvalidInput(f"gc run ids look like gc-20261130T074500Z-1a2b3c, got {str(run_id)[:80]!r}")
    return run_id


def new_run_id(now: datetime) -> str:
    import secrets

    return f"gc-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
