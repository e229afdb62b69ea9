"""The audit use case: load the manifest cache, run the audit, publish the report, save the cache.

The scheduled AuditFunction and ``regvault audit`` both call ``audit_registry``; they differ only in the
ports they pass (the reports bucket and SNS for the Lambda; a cache file and no sink for the CLI).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from regvault.audit.findings import AuditReport
from regvault.audit.run import AuditRequest, Progress, run_audit
from regvault.images.manifest_cache import ManifestCache
from regvault.reports.scheduled import Alerts, publish_report
from regvault.storage.layout import RegistryLayout
from regvault.storage.store import ObjectStore, RegistryStore


class ManifestCacheStore(Protocol):
    """Where the manifest versions an earlier audit read are kept between audits."""

    def load(self) -> ManifestCache: ...

    def save(self, cache: ManifestCache) -> None: ...


@dataclass(frozen=True)
class AuditOutcome:
    report: AuditReport
    published: dict[str, Any] | None  # publish_report's answer when a report sink was given
    cache_problem: str | None  # why the manifest cache could not be used (every manifest was read)


def audit_registry(
    store: RegistryStore,
    layout: RegistryLayout,
    request: AuditRequest,
    *,
    cache: ManifestCacheStore | None = None,
    sink: ObjectStore | None = None,
    alerts: Alerts | None = None,
    warn: Callable[[str], None] | None = None,
    progress: Progress | None = None,
) -> AuditOutcome:
    """Audit the registry. With ``cache``: manifests read before are not read again, and what this audit
    read is saved for the next one. With ``sink``: the report is written there and ``alerts`` is told
    when errors were found. ``warn`` hears, before the audit starts, why the cache could not be used."""
    return _cached_and_published(
        lambda known: run_audit(store, layout, replace(request, manifest_cache=known), progress),
        cache,
        sink,
        alerts,
        warn,
    )


def _cached_and_published(
    audit: Callable[[ManifestCache | None], AuditReport],
    cache: ManifestCacheStore | None,
    sink: ObjectStore | None,
    alerts: Alerts | None,
    warn: Callable[[str], None] | None,
) -> AuditOutcome:
    """Load the manifest cache, run ``audit`` with it, publish the report, save what the audit read."""
    loaded = cache.load() if cache is not None else None
    problem = loaded.problem if loaded is not None else None
    if problem and warn is not None:
        warn(problem)
    report = audit(loaded)
    published = publish_report(report, sink, alerts) if sink is not None else None
    if cache is not None and loaded is not None:
        cache.save(loaded)
    return AuditOutcome(report, published, problem)


@dataclass(frozen=True)
class AuditMode:
    distributed: bool
    reason: str


def choose_mode(last_size: int | None, threshold: int, distributed_available: bool) -> AuditMode:
    """In this Lambda, or as the AuditStateMachine: by the size the last audit listed (a registry grows
    slowly; the first audit, with nothing to go by, runs here). ``threshold`` 0: always distributed."""
    if not distributed_available:
        return AuditMode(False, "no audit state machine configured")
    if threshold == 0:
        return AuditMode(True, "the threshold is 0: every audit is distributed")
    if last_size is None:
        return AuditMode(False, "no earlier report says how big the registry is")
    if last_size >= threshold:
        return AuditMode(
            True, f"the last audit listed {last_size:,} object versions (threshold {threshold:,})"
        )
    return AuditMode(False, f"the last audit listed {last_size:,} object versions (threshold {threshold:,})")


def reduce_audit_run(
    store: RegistryStore,
    layout: RegistryLayout,
    plan: dict[str, Any],
    request: AuditRequest,
    *,
    parts: ObjectStore,
    cache: ManifestCacheStore | None = None,
    sink: ObjectStore | None = None,
    alerts: Alerts | None = None,
    warn: Callable[[str], None] | None = None,
) -> AuditOutcome:
    """The last step of a distributed audit: merge the workers' parts (in ``parts``), then cache, rules,
    publish and save exactly as ``audit_registry`` does."""
    from regvault.audit.distributed import reduce_run

    run, shards, started_at = plan.get("run"), plan.get("shards"), plan.get("started_at")  # checked there
    return _cached_and_published(
        lambda known: reduce_run(
            store,
            layout,
            run,  # type: ignore[arg-type]
            shards,  # type: ignore[arg-type]
            started_at,  # type: ignore[arg-type]
            replace(request, manifest_cache=known),
            parts,
        ),
        cache,
        sink,
        alerts,
        warn,
    )
