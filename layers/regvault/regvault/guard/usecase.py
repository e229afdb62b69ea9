"""The guard: one S3 event on a tag's ``current/link`` in, a decision out; a protected tag that moved
is put back.

Decided from the tag's version history and the tag's pin, not from the event alone, so events that
arrive late, twice or out of order are harmless:
- the event's version is found in the key's history (not there: deleted for good, nothing to do);
- a version the guard wrote itself carries the ``regvault-guard`` metadata: left alone (no loops);
- the digest the tag keeps is its pin (``<root>/regvault/guard/pins/<repo>/<tag>.json``), written once,
  the first time the guard sees the tag after it became protected: what the nearest data version older
  than that event held (none: the event is the tag's first push, which is not reverted, and pins it);
- the tag's newest version already holds the pinned digest (a duplicate, a late event after the
  put-back, or a re-push of the same image): nothing to do;
- otherwise the restore core copies the protected image's whole closure forward and moves the tag back
  with a compare-and-swap on its link (a write that slips in meanwhile raises its own event); when S3
  no longer holds the image, the guard alerts instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from regvault.errors import InvalidInput, RegvaultError
from regvault.guard.patterns import Protection
from regvault.restore.apply import TagMoved, apply_plan
from regvault.restore.planner import plan_restore
from regvault.restore.usecase import Notifier
from regvault.storage.digest import Digest, parse_link_body
from regvault.storage.inventory import KeyHistory, ObjectVersion, walk
from regvault.storage.layout import RegistryLayout, TagCurrentLink
from regvault.storage.store import RegistryStore

MARK_KEY = "regvault-guard"
MARK = {MARK_KEY: "put-back"}

# (repository, tag, digest) -> who set it, from the push journal when it has it
ActorLookup = Callable[[str, str, str], str | None]


@dataclass
class GuardDecision:
    action: str  # "ignored" | "kept" | "reverted" | "unrecoverable" | "moved-again"
    reason: str
    repository: str | None = None
    tag: str | None = None
    protected: str | None = None  # the digest the tag keeps
    found: str | None = None  # what the tag pointed at (None: deleted)
    copied: int = 0
    actor: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _digest(store: RegistryStore, key: str, version: ObjectVersion) -> Digest | None:
    try:
        return parse_link_body(store.get_bytes(key, version.version_id, max_bytes=256))
    except (InvalidInput, ValueError):
        return None


def guard_event(
    store: RegistryStore,
    layout: RegistryLayout,
    protection: Protection,
    key: str,
    version_id: str | None,
    *,
    notifier: Notifier | None = None,
    actor_of: ActorLookup | None = None,
) -> GuardDecision:
    entity = layout.parse(key)
    if not isinstance(entity, TagCurrentLink):
        return GuardDecision("ignored", "not a tag's current link")
    repo, tag = entity.repository, entity.tag
    where: dict[str, Any] = {"repository": repo, "tag": tag}
    if not protection.protects(repo, tag):
        return GuardDecision("ignored", "the tag is not protected", **where)
    history = walk(store, key).get(key) or KeyHistory(key)
    ids = [v.version_id for v in history.versions]
    if version_id is None or version_id not in ids:
        return GuardDecision("ignored", "the event's version is not in the tag's history", **where)
    position = ids.index(version_id)
    event = history.versions[position]
    if not event.is_delete_marker and store.version_metadata(key, version_id).get(MARK_KEY):
        return GuardDecision("ignored", "the guard's own write", **where)
    protected, first_push = _pin(store, layout, repo, tag, key, history, position)
    if protected is None:
        return GuardDecision("ignored", "the earlier link is not a digest: nothing to protect", **where)
    if first_push:
        return GuardDecision("kept", "the tag's first push", protected=str(protected), **where)
    latest = history.versions[0]
    now = None if latest.is_delete_marker else _digest(store, key, latest)
    where.update(protected=str(protected), found=str(now) if now else None)
    if now == protected:
        return GuardDecision("kept", "the tag points at its protected digest", **where)
    actor = actor_of(repo, tag, str(now)) if actor_of and now else None
    what = f"{repo}:{tag} ({'deleted' if now is None else 'moved to ' + now.short})"
    try:
        plan, _ = plan_restore(store, layout, repo, tag, to=str(protected))
    except RegvaultError as exc:
        return _alert(notifier, GuardDecision("unrecoverable", str(exc), actor=actor, **where), what)
    if not plan.restorable:
        names = ", ".join(sorted(str(layout.relative(n.key)) for n in plan.missing)[:3])
        reason = f"S3 holds no version of {names}"
        return _alert(notifier, GuardDecision("unrecoverable", reason, actor=actor, **where), what)
    try:
        copied = apply_plan(store, plan, tag_metadata=MARK).copied
    except TagMoved:
        return GuardDecision("moved-again", "the tag moved again meanwhile: its own event follows", **where)
    decision = GuardDecision("reverted", "put back", copied=copied, actor=actor, **where)
    if notifier is not None:
        by = f" by {actor}" if actor else " (who: not in the push journal)"
        notifier.publish(
            f"regvault: protected tag {repo}:{tag} put back",
            f"{what}{by}; put back to {protected.short} in s3://{store.bucket}/{layout.root} "
            f"({copied} object version(s) copied forward, nothing deleted).",
        )
    return decision


def _pin(
    store: RegistryStore,
    layout: RegistryLayout,
    repo: str,
    tag: str,
    key: str,
    history: KeyHistory,
    position: int,
) -> tuple[Digest | None, bool]:
    """(the digest the tag keeps, whether this event is the tag's first push). The pin is written once
    (``If-None-Match: *``): the first event the guard sees for the tag decides it; every later one
    reads it."""
    import json

    pin_key = layout.guard_pin_key(repo, tag)
    try:
        return Digest.parse(json.loads(store.get_bytes(pin_key, max_bytes=4096))["digest"]), False
    except (RegvaultError, ValueError, KeyError, TypeError):
        pass  # no pin yet (or not ours): decide it from the history
    older = [v for v in history.versions[position + 1 :] if not v.is_delete_marker]
    source = older[0] if older else history.versions[position]
    digest = None if source.is_delete_marker else _digest(store, key, source)
    if digest is None:
        return None, False
    body = json.dumps(
        {"repository": repo, "tag": tag, "digest": str(digest), "version_id": source.version_id}
    )
    if not store.put_if_absent(pin_key, body.encode(), "application/json"):  # another event won: read it
        return Digest.parse(json.loads(store.get_bytes(pin_key, max_bytes=4096))["digest"]), False
    return digest, not older


def _alert(notifier: Notifier | None, decision: GuardDecision, what: str) -> GuardDecision:
    if notifier is not None:
        notifier.publish(
            f"regvault: protected tag {decision.repository}:{decision.tag} could NOT be put back",
            f"{what}; it should point at {decision.protected}, but: {decision.reason}.",
        )
    return decision
