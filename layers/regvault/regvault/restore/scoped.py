"""Load just what a repository's restore (or history) needs: its own keys, then the blob keys of the
images considered, listed key by key — not the whole bucket."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from regvault.images.sources import LinkReader, ManifestSource
from regvault.storage.digest import Digest
from regvault.storage.inventory import Inventory, walk
from regvault.storage.layout import BlobData, RegistryLayout
from regvault.storage.model import RegistryModel
from regvault.storage.store import RegistryStore


class ScopedModel:
    """The repository's keys, plus the blob keys its images need, listed key by key.

    Costs ceil(versions under the repository / 1000) list requests, one list request per blob or
    manifest of the images considered, and one GET per manifest version read.
    """

    def __init__(
        self, store: RegistryStore, layout: RegistryLayout, repository: str, workers: int = 16
    ) -> None:
        self.store = store
        self.workers = workers
        inventory = walk(store, layout.repository_prefix(repository), scratch=layout.upload_group)
        # the prefix also covers nested repositories (team/app/sub): the model indexes them apart
        self.model = RegistryModel(inventory, layout)
        if repository not in self.model.repositories:
            raise layout.no_registry(store.bucket, repository)
        self.repo = self.model.repositories[repository]
        self.manifests = ManifestSource(store, self.model)
        self.links = LinkReader(store)
        self.listed: set[str] = set()

    def _list_blobs(self, digests: Iterable[Digest]) -> None:
        keys = [self.model.layout.key(BlobData(d)) for d in digests]
        keys = [k for k in keys if k not in self.listed]
        if not keys:
            return
        self.listed.update(keys)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            parts = list(pool.map(lambda key: walk(self.store, key), keys))
        part = Inventory()
        for piece in parts:
            for history in piece:
                if history.key in self.listed and history.key not in self.model.inventory.keys:
                    part.keys[history.key] = history
        self.model.absorb(part)

    def load_images(self, digests: Iterable[Digest]) -> None:
        """List every object of these images (manifests, children, configs, layers)."""
        pending = set(digests)
        done: set[Digest] = set()
        while pending:
            self._list_blobs(pending)
            self.manifests.prefetch(pending, self.workers, historical=True)
            found: set[Digest] = set()
            blobs: set[Digest] = set()
            for digest in pending:
                read = self.manifests.current(digest)
                if read is None or not read.digest_ok or read.manifest is None:
                    read = self.manifests.best_recoverable(digest)
                if read is not None and read.manifest is not None:
                    found.update(c.digest for c in read.manifest.children)
                    blobs.update(b.digest for b in read.manifest.blobs)
            self._list_blobs(blobs)
            done |= pending
            pending = found - done
