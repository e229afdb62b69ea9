"""Deep verification: stream referenced live blobs through sha256 (all or a sample), in parallel."""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from regvault.audit.findings import Finding
from regvault.audit.housekeeping import referenced_digests
from regvault.images.sources import ManifestSource, is_live
from regvault.storage.digest import Digest
from regvault.storage.model import RegistryModel


class BlobHasher(Protocol):
    def stream_sha256(
        self, key: str, version_id: str | None = None, chunk_size: int = ...
    ) -> tuple[str, int]: ...


def deep_verify(
    hasher: BlobHasher,
    model: RegistryModel,
    manifests: ManifestSource,
    sample: float,
    workers: int,
    rng: random.Random | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Finding], int, int]:
    """Stream every referenced live blob through sha256 (or a sample); (findings, blobs, bytes)."""
    referenced = referenced_digests(model, manifests)
    targets = sorted(
        d
        for d in referenced
        if d.algorithm == "sha256"
        and is_live(model.blobs.get(d))
        and (d, model.blobs[d].current.version_id) not in manifests.cache  # type: ignore[union-attr]
    )
    if sample < 1.0:
        rng = rng or random.Random()  # noqa: S311 - sampling, not secrets
        targets = [d for d in targets if rng.random() < sample]
    findings: list[Finding] = []
    total = 0
    done = 0

    def check(digest: Digest) -> tuple[Digest, str, int]:
        history = model.blobs[digest]
        assert history.current is not None
        hexdigest, size = hasher.stream_sha256(history.key, history.current.version_id)
        return digest, hexdigest, size

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for digest, hexdigest, size in pool.map(check, targets):
            total += size
            done += 1
            if progress:
                progress(done, len(targets))
            if hexdigest != digest.hex:
                history = model.blobs[digest]
                message = f"blob {digest.short} hashes to sha256:{hexdigest[:12]}"
                recoverable = len(history.data_versions) > 1 or None
                findings.append(
                    Finding.at_key("BLOB_DIGEST_MISMATCH", message, history.key, digest, recoverable)
                )
    return findings, len(targets), total
