"""The audit past one Lambda: plan key ranges, list each in its own worker, reduce them into one report.

The AuditStateMachine (``statemachine/audit.asl.json``) runs ``plan_run`` in its first state, a
Distributed Map of ``audit_shard`` over the plan's items, and ``reduce_run`` last. A worker lists one key
range of the bucket (``RegistryLayout.shard_bounds``: blob prefixes, repositories by first character)
exactly as ``regvault audit --shards`` lists it in threads, and writes the range's inventory to the
reports bucket as a part (``storage.parts``); the reduce step merges the parts and runs the same rules
as ``run_audit``, so the report is the same document (a test compares them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from regvault.audit.findings import AuditReport
from regvault.audit.run import AuditRequest, audit_inventory, list_inventory
from regvault.errors import InvalidInput
from regvault.storage.inventory import Inventory
from regvault.storage.layout import RegistryLayout
from regvault.storage.parts import decode_part, encode_part
from regvault.storage.store import ObjectStore, RegistryStore

RUNS_PREFIX = "audit-runs/"  # the reports bucket's lifecycle rule expires parts after a few days
_RUN = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def check_run(run: object) -> str:
    if not isinstance(run, str) or not _RUN.match(run):
        raise InvalidInput(f"audit run ids are 1-80 letters, digits, '-' or '_', got {str(run)[:90]!r}")
    return run


@dataclass(frozen=True)
class ShardItem:
    """One key range of the registry: the keys after ``after`` up to and including ``through``, both
    relative to the registry's prefix (a plan stays small whatever the root directory's length)."""

    shard: int
    after: str | None
    through: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"shard": self.shard, "after": self.after, "through": self.through}

    @classmethod
    def parse(cls, raw: object) -> ShardItem:
        if not isinstance(raw, dict) or set(raw) != {"shard", "after", "through"}:
            raise InvalidInput('a shard item is {"shard": n, "after": key | null, "through": key | null}')
        shard, after, through = raw["shard"], raw["after"], raw["through"]
        if not isinstance(shard, int) or isinstance(shard, bool) or not 0 <= shard < 4096:
            raise InvalidInput(f"shard must be a number from 0 to 4095, got {shard!r}")
        for bound in (after, through):
            if bound is not None and (not isinstance(bound, str) or not 0 < len(bound) <= 1024):
                raise InvalidInput("shard bounds are S3 keys (1-1024 characters) or null")
        if after is not None and through is not None and after >= through:
            raise InvalidInput(f"shard {shard}: {after!r} is not before {through!r}")
        return cls(shard, after, through)


def plan_run(
    layout: RegistryLayout,
    run: str,
    shards: int = 256,
    now: datetime | None = None,
    repositories: list[str] | None = None,
) -> dict[str, Any]:
    """The state machine's plan: the run id, when it started, and one item per key range (repositories
    cut at the folders ``inventory.repository_bounds`` found, else by first character)."""
    bounds = [bound[len(layout.prefix) :] for bound in layout.shard_bounds(shards, repositories)]
    items = [
        ShardItem(k, a, b).as_dict()
        for k, (a, b) in enumerate(zip([None, *bounds], [*bounds, None], strict=True))
    ]
    return {
        "run": check_run(run),
        "started_at": (now or datetime.now(UTC)).isoformat(),
        "shards": len(items),
        "items": items,
    }


def part_key(run: str, shard: int) -> str:
    return f"{RUNS_PREFIX}{check_run(run)}/shard-{shard:04d}.json.gz"


def audit_shard(
    store: RegistryStore,
    layout: RegistryLayout,
    run: str,
    item: ShardItem,
    request: AuditRequest,
    sink: ObjectStore,
) -> dict[str, Any]:
    """List one key range and write it to ``sink`` as a part; answer a small summary (the Map's result
    stays far below Step Functions' 256 KiB per state)."""
    before = store.requests.total
    after, through = (None if b is None else layout.prefix + b for b in (item.after, item.through))
    inventory = list_inventory(store, layout, replace(request, shards=1), after=after, through=through)
    requests = store.requests.total - before
    key = part_key(run, item.shard)
    sink.put_bytes(key, encode_part(inventory, requests), "application/gzip")
    return {
        "shard": item.shard,
        "part": key,
        "keys": len(inventory.keys),
        "object_versions": inventory.object_versions,
        "s3_requests": requests + 1,  # the part's PUT, on the reports bucket
    }


def read_parts(sink: ObjectStore, run: str, shards: int, prefix: str) -> tuple[Inventory, int]:
    """Every part of a run merged (one missing part fails the run: a report must cover the whole bucket)."""
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= 4096:
        raise InvalidInput(f"shards must be a count from 1 to 4096, got {shards!r}")
    merged = Inventory(prefix)
    listed = 0
    for shard in range(shards):
        key = part_key(run, shard)
        part, requests = decode_part(sink.get_bytes(key), f"s3://{sink.bucket}/{key}")
        if part.prefix != prefix:
            raise InvalidInput(
                f"s3://{sink.bucket}/{key} lists {part.prefix!r}, not this registry's {prefix!r}"
            )
        merged.merge(part)
        listed += requests
    return merged, listed


def reduce_run(
    store: RegistryStore,
    layout: RegistryLayout,
    run: str,
    shards: int,
    started_at: str,
    request: AuditRequest,
    sink: ObjectStore,
) -> AuditReport:
    """Merge the run's parts and audit them: the report ``run_audit`` writes for the same bucket."""
    try:
        started = datetime.fromisoformat(started_at)
    except (TypeError, ValueError):
        raise InvalidInput(f"started_at must be an ISO 8601 time, got {str(started_at)[:40]!r}") from None
    if started.tzinfo is None:
        raise InvalidInput("started_at needs a time zone")
    before = store.requests.total
    store.check_bucket()
    posture = store.posture()
    inventory, listed = read_parts(sink, check_run(run), shards, layout.prefix)
    inventory.finalize()
    # the workers' listings and part writes, and this step's part reads, count as the audit's requests
    return audit_inventory(
        store, layout, inventory, posture, request, started, before, listed_elsewhere=listed + 2 * shards
    )
