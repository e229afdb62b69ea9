"""``regvault usage``: what the registry stores and costs, per repository, and what-if for another
recovery window. One listing of every version (upload scratch included: it is stored and billed) plus
the manifest reads the audit makes; nothing is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regvault.audit.housekeeping import referenced_digests
from regvault.audit.posture import posture_findings
from regvault.errors import InvalidInput
from regvault.images.sources import LinkReader, ManifestSource
from regvault.storage.inventory import walk
from regvault.storage.layout import RegistryLayout
from regvault.storage.model import RegistryModel
from regvault.storage.reference import validate_repository
from regvault.storage.store import RegistryStore
from regvault.usage.compute import repository_usage, usage_document
from regvault.usage.prices import monthly, price_for


@dataclass(frozen=True)
class UsageRequest:
    repository: str | None = None
    recovery_days: int | None = None  # what-if: the noncurrent bytes a window of this many days keeps
    price_gb_month: float | None = None
    region: str | None = None
    workers: int = 8
    page_size: int = 1000
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.repository is not None:
            validate_repository(self.repository)
        if self.recovery_days is not None and not 1 <= self.recovery_days <= 36500:
            raise InvalidInput("--recovery-days must be between 1 and 36500")
        if not 1 <= self.page_size <= 1000:
            raise InvalidInput("page size must be between 1 and 1000")


def registry_usage(store: RegistryStore, layout: RegistryLayout, request: UsageRequest) -> dict[str, Any]:
    inventory = walk(store, layout.prefix, scratch=layout.upload_group, page_size=request.page_size)
    if not len(inventory):
        raise layout.no_registry(store.bucket)
    model = RegistryModel(inventory, layout)
    if request.repository is not None and request.repository not in model.repositories:
        raise layout.no_registry(store.bucket, request.repository)
    manifests = ManifestSource(store, model)
    revisions = {d for r in model.repositories.values() for d in r.revisions}
    manifests.prefetch(revisions, request.workers)
    manifests.prefetch(revisions, request.workers, historical=True)
    _, window = posture_findings(store.posture(), layout)
    doc = usage_of_model(
        model,
        manifests,
        LinkReader(store),
        window,
        request.now,
        recovery_days=request.recovery_days,
        region=request.region,
        price_gb_month=request.price_gb_month,
    )
    if request.repository is not None:
        doc["repositories"] = {request.repository: doc["repositories"][request.repository]}
    doc["bucket"], doc["root"] = store.bucket, layout.root
    doc["s3_requests"] = store.requests.total
    return doc


def usage_of_model(
    model: RegistryModel,
    manifests: ManifestSource,
    links: LinkReader,
    window: int | None,
    now: datetime,
    *,
    recovery_days: int | None = None,
    region: str | None = None,
    price_gb_month: float | None = None,
) -> dict[str, Any]:
    """The usage document from a model and its manifests (read already: the audit's, or ``registry_usage``'s):
    totals, per repository, monthly cost, what-if. No S3 request of its own beyond link bodies the
    links reader has not seen."""
    repositories = repository_usage(model, manifests, links)
    doc = usage_document(model, repositories, referenced_digests(model, manifests), now, recovery_days)
    price, source = price_for(region, price_gb_month)
    t = doc["totals"]
    doc["recovery_window_days"] = window
    doc["price"] = {"usd_per_gb_month": price, "source": source}
    doc["monthly_usd"] = {
        "current": monthly(t["stored_current_bytes"], price),
        "noncurrent": monthly(t["stored_noncurrent_bytes"], price),
        "total": monthly(t["stored_current_bytes"] + t["stored_noncurrent_bytes"], price),
    }
    for row in doc["repositories"].values():
        row["monthly_usd"] = monthly(row["unique_bytes"] + row["shared_bytes"], price)
    if "what_if" in doc:
        doc["what_if"]["monthly_usd_noncurrent"] = monthly(doc["what_if"]["stored_noncurrent_bytes"], price)
    return doc
