"""Restore targets: what a restore request may say (validated in one place for the CLI, the Lambda
event and the planner) and which digest each tag goes back to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from regvault.errors import InvalidInput
from regvault.images.closure import pointer_at, tag_pointers
from regvault.restore.scoped import ScopedModel
from regvault.storage.digest import Digest
from regvault.storage.model import link_candidates
from regvault.storage.reference import validate_repository, validate_tag


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


@dataclass(frozen=True)
class RestoreRequest:
    """One restore: a tag (or, with ``at`` only, every tag of the repository) and exactly one of
    ``to`` (a digest), ``previous`` (N digests back) or ``at`` (a time)."""

    repository: str
    tag: str | None = None
    to: str | None = None
    previous: int | None = None
    at: datetime | None = None

    def __post_init__(self) -> None:
        validate_repository(self.repository)
        if self.tag is None and self.at is None:
            raise InvalidInput("restoring a whole repository needs --at TIME (or name a tag: REPO:TAG)")
        if self.tag is None and (self.to is not None or self.previous is not None):
            raise InvalidInput("--to and --previous restore one tag: use REPO:TAG")
        if self.tag is not None:
            validate_tag(self.tag)
        if sum(x is not None for x in (self.to, self.previous, self.at)) != 1:
            raise InvalidInput("give exactly one of --to DIGEST, --previous [N], --at TIME")
        if self.to is not None:
            Digest.parse(self.to)
        if self.previous is not None and self.previous < 1:
            raise InvalidInput("--previous takes a number of 1 or more")

    @classmethod
    def parse(
        cls,
        repository: str,
        tag: str | None,
        *,
        to: str | None = None,
        previous: int | None = None,
        at: str | datetime | None = None,
    ) -> RestoreRequest:
        """From user input: ``at`` may still be text (ISO-8601 with an offset)."""
        when = parse_time(at) if isinstance(at, str) else at
        return cls(repository, tag, to, previous, when)


@dataclass
class Target:
    repository: str
    tag: str
    digest: Digest
    reason: str
    current: Digest | None  # what the tag points at now (None: deleted)
    current_version: str | None  # version id of current/link's latest version at planning time


def current_state(scoped: ScopedModel, tag: str) -> tuple[Digest | None, str | None]:
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
    """The digest ``tag`` goes back to; ``to``/``previous``/``at`` were checked by ``RestoreRequest``."""
    repo = scoped.repo
    keys = repo.tags.get(tag)
    current, current_version = current_state(scoped, tag)
    name = f"{repo.name}:{tag}"
    if to is not None:
        digest = Digest.parse(to)
        reason = f"--to {digest.short}"
    elif previous is not None:
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
