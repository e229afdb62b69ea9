"""Restore previous image versions by copying old S3 object versions forward.

Safety rules (each has a test):
- Copy-forward only: an object comes back as a new version copied from one of its old versions (or, for
  links, from another link holding the same 71 bytes). Nothing is ever deleted or overwritten in place:
  every version present before a restore is present after it.
- Order: blobs, manifests, ``_layers`` links, revision links, the tag's index entry, and the tag's
  ``current/link`` last, so a client never sees the tag point at an incomplete image.
- Not restorable (some object has no suitable version left): nothing is written; the plan names it.
- Someone pushed to the tag after the plan was made: stop before moving the tag (``force`` overrides).
- Interrupted: running the same restore again completes it; a finished restore changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regvault.errors import InvalidInput, NoRegistryFound, RegvaultError
from regvault.images.closure import (
    PHASES,
    ImagePlan,
    LinkReader,
    ManifestSource,
    Need,
    Planner,
    pointer_at,
    tag_pointers,
)
from regvault.storage.digest import Digest
from regvault.storage.inventory import Inventory, walk
from regvault.storage.layout import BlobData, RegistryLayout, TagCurrentLink
from regvault.storage.model import RegistryModel, link_candidates
from regvault.storage.reference import validate_repository, validate_tag


class NotRestorable(RegvaultError):
    exit_code = 1


class TagMoved(RegvaultError):
    """Someone pushed to the tag after the plan was made."""

    exit_code = 1


def parse_time(text: str) -> datetime:
    """ISO-8601 with an offset (``2026-11-20T10:00:00+00:00`` or ``…Z``); naive times are refused."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"invalid time {str(text)[:60]!r}: use ISO-8601 with an offset, e.g. 2026-11-20T10:00:00Z"
        ) from None
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidInput(f"time {text[:60]!r} has no UTC offset: add 'Z' or '+HH:MM'")
    return when.astimezone(UTC)


# --- loading just what a repository's restore needs ------------------------------------------


class ScopedModel:
    """The repository's keys, plus the blob keys its images need, listed key by key.

    Costs ceil(versions under the repository / 1000) list requests, one list request per blob or
    manifest of the images considered, and one GET per manifest version read.
    """

    def __init__(self, store: Any, layout: RegistryLayout, repository: str, workers: int = 16) -> None:
        self.store = store
        self.workers = workers
        inventory = walk(store, layout.repository_prefix(repository), scratch=layout.upload_group)
        # keep only this repository's keys (the prefix also covers team/app/sub)
        self.model = RegistryModel(inventory, layout)
        if repository not in self.model.repositories:
            raise NoRegistryFound(
                f"no repository {repository!r} under {layout.prefix!r} in bucket {store.bucket!r}"
            )
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


# --- targets and plans -------------------------------------------------------------------------


@dataclass
class Target:
    repository: str
    tag: str
    digest: Digest
    reason: str
    current: Digest | None  # what the tag points at now (None: deleted)
    current_version: str | None  # version id of current/link's latest version at planning time


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


def _current_state(scoped: ScopedModel, tag: str) -> tuple[Digest | None, str | None]:
    keys = scoped.repo.tags.get(tag)
    if keys is None or keys.current is None or keys.current.latest is None:
        return None, None
    latest = keys.current.latest
    digest = None
    if not latest.is_delete_marker:
        result = scoped.links.resolve(keys.current, latest, link_candidates(scoped.repo, keys))
        digest = result if isinstance(result, Digest) else None
    return digest, latest.version_id


def choose_target(
    scoped: ScopedModel,
    tag: str,
    *,
    to: str | None = None,
    previous: int | None = None,
    at: datetime | None = None,
    now: datetime | None = None,
) -> Target:
    validate_tag(tag)
    if sum(x is not None for x in (to, previous, at)) != 1:
        raise InvalidInput("give exactly one of --to DIGEST, --previous [N], --at TIME")
    repo = scoped.repo
    keys = repo.tags.get(tag)
    current, current_version = _current_state(scoped, tag)
    name = f"{repo.name}:{tag}"
    if to is not None:
        digest = Digest.parse(to)
        reason = f"--to {digest.short}"
    elif previous is not None:
        if previous < 1:
            raise InvalidInput("--previous takes a number of 1 or more")
        if keys is None:
            raise InvalidInput(f"{name} has no history in this bucket")
        earlier = [d for d, _ in tag_pointers(scoped.links, repo, keys) if d != current]
        if len(earlier) < previous:
            raise InvalidInput(
                f"{name} has {len(earlier)} earlier digest(s) in S3; --previous {previous} is beyond that"
            )
        digest = earlier[previous - 1]
        reason = f"--previous {previous}"
    else:
        assert at is not None
        if at > (now or datetime.now(UTC)):
            raise InvalidInput(f"--at {at.isoformat()} is in the future")
        if keys is None or keys.current is None:
            raise InvalidInput(f"{name} has no history in this bucket")
        first = keys.current.first_written
        if first is None or at < first:
            raise InvalidInput(
                f"{name} did not exist at {at.isoformat()} "
                f"(its history starts {first.isoformat() if first else 'never'})"
            )
        found = pointer_at(scoped.links, repo, keys, at)
        if found is None:
            raise InvalidInput(f"{name} was deleted at {at.isoformat()}: nothing to restore to")
        digest = found
        reason = f"--at {at.isoformat()}"
    return Target(repo.name, tag, digest, reason, current, current_version)


def plan_restore(
    store: Any,
    layout: RegistryLayout,
    repository: str,
    tag: str | None,
    *,
    to: str | None = None,
    previous: int | None = None,
    at: datetime | None = None,
) -> tuple[RestorePlan, ScopedModel]:
    """Plan a restore of one tag, or (``tag`` None, ``at`` given) of every tag of a repository."""
    validate_repository(repository)
    if tag is None and at is None:
        raise InvalidInput("restoring a whole repository needs --at TIME (or name a tag: REPO:TAG)")
    if tag is None and (to is not None or previous is not None):
        raise InvalidInput("--to and --previous restore one tag: use REPO:TAG")
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


# --- applying ----------------------------------------------------------------------------------


@dataclass
class ApplyResult:
    copied: int
    operations: int


def apply_plan(
    store: Any,
    plan: RestorePlan,
    *,
    force: bool = False,
    progress: Callable[[int, int, Need], None] | None = None,
) -> ApplyResult:
    """Carry the plan out. Writes nothing when the plan is not restorable."""
    if not plan.restorable:
        names = ", ".join(sorted(n.key for n in plan.missing)[:5])
        raise NotRestorable(f"not restorable: {len(plan.missing)} object(s) have no version left ({names})")
    operations = plan.operations
    expected = {store_key(plan, t): t for t in plan.targets}
    copied = 0
    for i, need in enumerate(operations, 1):
        if need.phase == "tag-current":
            target = expected[need.key]
            latest = store.latest_version_id(need.key)
            if latest != target.current_version and not force:
                raise TagMoved(
                    f"{target.repository}:{target.tag} changed after the plan was made (someone pushed?): "
                    "the tag was not moved; plan again, or use --force"
                )
        assert need.source_key is not None and need.source_version is not None
        store.copy_version(need.key, need.source_key, need.source_version, need.size)
        copied += 1
        if progress:
            progress(i, len(operations), need)
    return ApplyResult(copied, len(operations))


def store_key(plan: RestorePlan, target: Target) -> str:
    return RegistryLayout(plan.root).key(TagCurrentLink(target.repository, target.tag))


# --- history -----------------------------------------------------------------------------------


def tag_history(store: Any, layout: RegistryLayout, repository: str, tag: str | None) -> dict[str, Any]:
    """Every digest each tag pointed at, newest first, with whether its image can be restored."""
    validate_repository(repository)
    if tag is not None:
        validate_tag(tag)
    scoped = ScopedModel(store, layout, repository)
    names = [tag] if tag is not None else sorted(scoped.repo.tags)
    if tag is not None and tag not in scoped.repo.tags:
        raise NoRegistryFound(f"no tag {repository}:{tag} in this bucket (not even deleted)")
    pointers = {name: tag_pointers(scoped.links, scoped.repo, scoped.repo.tags[name]) for name in names}
    scoped.load_images(d for entries in pointers.values() for d, _ in entries)
    planner = Planner(scoped.model, scoped.manifests, scoped.links)
    tags = []
    for name in names:
        current, _ = _current_state(scoped, name)
        keys = scoped.repo.tags[name]
        entries = []
        for digest, when in pointers[name]:
            image = planner.image(repository, digest, name)
            entries.append(
                {
                    "digest": str(digest),
                    "at": when.isoformat() if when else None,
                    "current": digest == current,
                    "media_type": image.media_type,
                    "size": image.size,
                    "recoverable": image.recoverable,
                    "missing": [layout.relative(n.key) for n in image.missing],
                }
            )
        tags.append(
            {
                "repository": repository,
                "tag": name,
                "state": "deleted" if keys.deleted else "live",
                "history": entries,
            }
        )
    return {"bucket": store.bucket, "root": layout.root, "tags": tags, "s3_requests": store.requests.total}
