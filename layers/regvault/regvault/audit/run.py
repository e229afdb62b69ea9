"""The audit run: walk the bucket's versions once, read the manifests in parallel, apply the rules.

Rules live beside this module, each a function of the model and the manifests (no S3 client in sight,
so tests build the model directly): ``closures`` (each live tag's closure and history), ``hygiene``
(repository-wide), ``housekeeping`` (what GC would act on), ``posture`` (the bucket) and ``deep``
(sha256 of blob bytes).

Costs: ceil(versions / 1000) list requests + one GET per distinct manifest (current and historical)
+ one GET per link whose ETag does not identify its digest + 5 bucket-posture reads (+ deep reads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from regvault.audit.closures import TagRules
from regvault.audit.deep import deep_verify
from regvault.audit.findings import ERROR, WARNING, AuditReport, Finding, TagReport, finding_order
from regvault.audit.housekeeping import housekeeping, referenced_digests
from regvault.audit.hygiene import other_links, untagged_manifests
from regvault.audit.posture import posture_findings
from regvault.errors import InvalidInput
from regvault.images.closure import Planner
from regvault.images.manifest_cache import ManifestCache
from regvault.images.sources import LinkReader, ManifestSource
from regvault.storage.inventory import Inventory, repository_bounds, walk, walk_shards
from regvault.storage.layout import RegistryLayout
from regvault.storage.model import RegistryModel
from regvault.storage.store import BucketPosture, RegistryStore

DEFAULT_GRACE = timedelta(hours=2)


@dataclass
class AuditOptions:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    grace: timedelta = DEFAULT_GRACE
    workers: int = 8


def audit_model(
    model: RegistryModel,
    manifests: ManifestSource,
    links: LinkReader,
    posture: BucketPosture | None,
    options: AuditOptions,
) -> tuple[list[Finding], list[TagReport], int | None]:
    """Every rule over one model: (findings in report order, tag reports, recovery window in days)."""
    findings: list[Finding] = []
    window = None
    if posture is not None:
        found, window = posture_findings(posture, model.layout)
        findings += found
    planner = Planner(model, manifests, links)
    tags: list[TagReport] = []
    for name in model.repository_names():
        repo = model.repositories[name]
        rules = TagRules(model, manifests, links, planner)
        for tag_name in sorted(repo.tags):
            tags.append(rules.audit_tag(repo, repo.tags[tag_name]))
        findings += rules.findings
        findings += untagged_manifests(model, manifests, repo, rules.visited)
        findings += other_links(links, repo, rules.visited)
    findings += housekeeping(model, referenced_digests(model, manifests), options.now - options.grace)
    return sorted(findings, key=finding_order), tags, window


@dataclass
class AuditRequest:
    deep: bool = False
    sample: float = 1.0
    grace: timedelta = DEFAULT_GRACE
    workers: int = 8
    page_size: int = 1000
    shards: int = 1  # 1: one walk; 16 or 256: key ranges listed in parallel (RegistryLayout.shard_bounds)
    # False: an upload folder's versions are not listed past a page (its live keys are); True: every version
    upload_versions: bool = False
    manifest_cache: ManifestCache | None = None  # manifest versions read by an earlier audit
    # storage and cost per repository (regvault.usage) from the audit's own listing and manifests
    usage: bool = True
    price_region: str | None = None  # the bucket's region, for the S3 price table
    price_gb_month: float | None = None  # a price instead of the table's
    read_posture: bool = True  # False: no bucket-setting reads (the repair's role has no such rights)
    protected_tags: str = ""  # ProtectedTags: report those that moved and were not put back
    journal: Any = None  # regvault.journal.record.Journal: report tag writes no push explains

    def __post_init__(self) -> None:
        if not 0.0 < self.sample <= 1.0:
            raise InvalidInput("--sample must be a fraction in (0, 1]")
        if self.grace < timedelta(0):
            raise InvalidInput("the grace window cannot be negative")
        if not 1 <= self.page_size <= 1000:
            raise InvalidInput("page size must be between 1 and 1000")
        if not 1 <= self.workers <= 64:
            raise InvalidInput("workers must be between 1 and 64")
        if self.shards not in (1, 16, 256):
            raise InvalidInput("shards must be 1, 16 or 256")
        if self.protected_tags:
            from regvault.guard.patterns import Protection

            Protection.parse(self.protected_tags)


Progress = Callable[[str, int, int], None]  # (phase, done, total or 0)


def list_inventory(
    store: RegistryStore,
    layout: RegistryLayout,
    request: AuditRequest,
    progress: Progress | None = None,
    *,
    after: str | None = None,
    through: str | None = None,
) -> Inventory:
    """The audit's listing: every version below the registry prefix (upload folders current-only unless
    ``request.upload_versions``), in ``request.shards`` key ranges; or one key range (``after``,
    ``through``], which is what one worker of a distributed audit lists."""
    listing = (lambda pages, versions: progress("listing object versions", versions, 0)) if progress else None
    skip = None if request.upload_versions else layout.scratch_folder
    if after is not None or through is not None or request.shards == 1:
        return walk(
            store,
            layout.prefix,
            scratch=layout.upload_group,
            skip_scratch=skip,
            page_size=request.page_size,
            progress=listing,
            after=after,
            through=through,
        )
    repositories = repository_bounds(store, layout.repositories_prefix)
    return walk_shards(
        store,
        layout.prefix,
        layout.shard_bounds(request.shards, repositories),
        workers=request.workers,
        page_size=request.page_size,
        progress=listing,
        scratch=layout.upload_group,
        skip_scratch=skip,
    )


def run_audit(
    store: RegistryStore, layout: RegistryLayout, request: AuditRequest, progress: Progress | None = None
) -> AuditReport:
    started = datetime.now(UTC)
    requests_before = store.requests.total  # a warm Lambda reuses its store
    store.check_bucket()
    posture = store.posture() if request.read_posture else None
    inventory = list_inventory(store, layout, request, progress)
    return audit_inventory(store, layout, inventory, posture, request, started, requests_before, progress)


def audit_inventory(
    store: RegistryStore,
    layout: RegistryLayout,
    inventory: Inventory,
    posture: BucketPosture | None,
    request: AuditRequest,
    started: datetime,
    requests_before: int,
    progress: Progress | None = None,
    *,
    listed_elsewhere: int = 0,
) -> AuditReport:
    """Everything after the listing: the model, the manifests, the rules, the report. ``listed_elsewhere``:
    S3 requests other processes made for this audit (a distributed audit's workers), counted in."""
    if not len(inventory):
        raise layout.no_registry(store.bucket)
    model = RegistryModel(inventory, layout)
    manifests = ManifestSource(store, model, request.manifest_cache)
    # prefetch in parallel: every live revision, then the children they reference, then history
    manifests.prefetch_live(request.workers)
    historical = {d for r in model.repositories.values() for d in r.revisions} | {
        d for r in model.repositories.values() for t in r.tags.values() for d in t.index
    }
    manifests.prefetch(historical, request.workers, historical=True)
    if progress:
        progress("reading manifests", len(manifests.cache), len(manifests.cache))
    options = AuditOptions(grace=request.grace, workers=request.workers)
    links = LinkReader(store)
    findings, tags, window = audit_model(model, manifests, links, posture, options)
    if request.protected_tags:
        from regvault.guard.check import moved_protected_tags
        from regvault.guard.patterns import Protection

        moved = moved_protected_tags(store, layout, Protection.parse(request.protected_tags), tags)
        findings = sorted(findings + moved, key=finding_order)
    if request.journal is not None:
        from regvault.journal.check import writes_outside_registry

        outside = writes_outside_registry(store, model, links, request.journal)
        findings = sorted(findings + outside, key=finding_order)
        for tag in tags:  # who set each digest, for the reports' history
            for entry in tag.history:
                entry.by = request.journal.actor_of(tag.repository, tag.tag, entry.digest)
    blobs_hashed = bytes_hashed = 0
    if request.deep:
        deep_findings, blobs_hashed, bytes_hashed = deep_verify(
            store,
            model,
            manifests,
            request.sample,
            request.workers,
            progress=(lambda done, total: progress("verifying blobs (sha256)", done, total))
            if progress
            else None,
        )
        findings = sorted(findings + deep_findings, key=finding_order)
    usage = None
    if request.usage:
        from regvault.usage.usecase import usage_of_model

        usage = usage_of_model(
            model,
            manifests,
            links,
            window,
            started,
            region=request.price_region,
            price_gb_month=request.price_gb_month,
        )
        # upload folders the walk did not list version by version: their noncurrent scratch is not counted
        usage["totals"]["upload_folders_not_listed"] = inventory.scratch_folders_skipped
    finished = datetime.now(UTC)
    summary = {
        "repositories": len(model.repositories),
        "tags": sum(1 for t in tags if not t.deleted),
        "deleted_tags": sum(1 for t in tags if t.deleted),
        "manifests": len({d for d, _ in manifests.cache}),
        "manifests_from_cache": request.manifest_cache.hits if request.manifest_cache is not None else 0,
        "blobs": sum(1 for h in model.blobs.values() if h.current is not None),
        "object_versions": inventory.object_versions,
        "delete_markers": inventory.delete_markers,
        # upload folders whose versions were not listed (their live keys were): not in the counts above
        "upload_folders_not_listed": inventory.scratch_folders_skipped,
        "s3_requests": store.requests.total - requests_before + listed_elsewhere,
        "errors": sum(1 for f in findings if f.severity == ERROR),
        "warnings": sum(1 for f in findings if f.severity == WARNING),
        "infos": sum(1 for f in findings if f.severity == "info"),
        "deep": request.deep,
        "blobs_verified": blobs_hashed,
        "bytes_verified": bytes_hashed,
        "duration_s": round((finished - started).total_seconds(), 3),
    }
    return AuditReport(store.bucket, layout.root, started, finished, summary, findings, tags, window, usage)
