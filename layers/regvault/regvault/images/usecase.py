"""The catalog use case: what ``regvault ls`` prints and the CatalogFunction returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regvault.images.listing import Listing, list_registry, listing_document
from regvault.storage.layout import RegistryLayout
from regvault.storage.store import RegistryStore


@dataclass(frozen=True)
class Catalog:
    listing: Listing
    document: dict[str, Any]  # the JSON shape of ``regvault ls`` (listing_document)


def catalog(
    store: RegistryStore,
    layout: RegistryLayout,
    repository: str | None = None,
    *,
    page_size: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> Catalog:
    """List the registry (or one repository); the document counts only this listing's S3 requests."""
    before = store.requests.total
    listing = list_registry(store, layout, repository, page_size=page_size, progress=progress)
    return Catalog(listing, listing_document(listing, store.bucket, layout, store.requests.total - before))
