"""The restore plan: the targets, and per target image what to copy forward from which version."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from regvault.errors import InvalidInput
from regvault.images.closure import PHASES, ImagePlan, Need, Planner
from regvault.restore.scoped import ScopedModel
from regvault.restore.targets import RestoreRequest, Target, choose_target
from regvault.storage.layout import RegistryLayout
from regvault.storage.store import RegistryStore


@dataclass
class RestorePlan:
    bucket: str
    root: str
    targets: list[Target]
    images: list[ImagePlan]
    skipped: list[str] = field(default_factory=list)

    @property
    def operations(self) -> list[Need]:
        """Every copy, deduplicated by destination key, in restore order; tags' current links last."""
        seen: dict[str, Need] = {}
        for image in self.images:
            for need in image.copies:
                seen.setdefault(need.key, need)
        return sorted(seen.values(), key=lambda n: PHASES.index(n.phase))

    @property
    def missing(self) -> list[Need]:
        seen: dict[str, Need] = {}
        for image in self.images:
            for need in image.missing:
                seen.setdefault(need.key, need)
        return list(seen.values())

    @property
    def restorable(self) -> bool:
        return not self.missing

    @property
    def brings_blobs_back(self) -> bool:
        """True when blobs or manifests are copied (a registry's blob-descriptor cache may be stale)."""
        return any(n.phase in ("blob", "manifest") for n in self.operations)

    def notice(self, copied: int) -> tuple[str, str]:
        """Subject and body of the notice sent after an applied restore."""
        tags = ", ".join(f"{t.repository}:{t.tag} -> {t.digest.short}" for t in self.targets)
        return (
            f"regvault: restored {len(self.targets)} tag(s)",
            f"Restored {tags} in s3://{self.bucket}/{self.root}: {copied} object version(s) copied forward.",
        )

    def as_dict(self, layout: RegistryLayout) -> dict[str, Any]:
        def rel(key: str | None) -> str | None:
            return layout.relative(key) if key else None

        return {
            "bucket": self.bucket,
            "root": self.root,
            "restorable": self.restorable,
            "targets": [
                {
                    "repository": t.repository,
                    "tag": t.tag,
                    "digest": str(t.digest),
                    "reason": t.reason,
                    "current": str(t.current) if t.current else None,
                }
                for t in self.targets
            ],
            "operations": [
                {
                    "phase": n.phase,
                    "key": rel(n.key),
                    "source_key": rel(n.source_key),
                    "source_version": n.source_version,
                    "source_time": n.source_time.isoformat() if n.source_time else None,
                }
                for n in self.operations
            ],
            "missing": [{"key": rel(n.key), "digest": str(n.digest), "why": n.note} for n in self.missing],
            "skipped": self.skipped,
        }


def plan_restore(
    store: RegistryStore,
    layout: RegistryLayout,
    repository: str,
    tag: str | None,
    *,
    to: str | None = None,
    previous: int | None = None,
    at: datetime | None = None,
) -> tuple[RestorePlan, ScopedModel]:
    """Plan a restore of one tag, or (``tag`` None, ``at`` given) of every tag of a repository."""
    RestoreRequest(repository, tag, to, previous, at)  # every check that needs no S3 read, first
    scoped = ScopedModel(store, layout, repository)
    targets: list[Target] = []
    skipped: list[str] = []
    if tag is not None:
        targets.append(choose_target(scoped, tag, to=to, previous=previous, at=at))
    else:
        assert at is not None
        for name in sorted(scoped.repo.tags):
            try:
                targets.append(choose_target(scoped, name, at=at))
            except InvalidInput as exc:
                skipped.append(str(exc))
        if not targets:
            raise InvalidInput(f"no tag of {repository} existed at {at.isoformat()}")
    scoped.load_images(t.digest for t in targets)
    planner = Planner(scoped.model, scoped.manifests, scoped.links)
    images = [planner.image(t.repository, t.digest, t.tag, move_tag=True) for t in targets]
    return RestorePlan(store.bucket, layout.root, targets, images, skipped), scoped
