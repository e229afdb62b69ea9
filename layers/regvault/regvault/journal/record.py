"""Journal entries: what regvault keeps of the registry's push and delete events, one object per batch
in the reports bucket, partitioned by day, and how they are read back.

Idempotent: a batch's key is the hash of its event ids, so the registry's retry of a batch writes the
same object; readers drop duplicate event ids (a retried event in another batch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from regvault.errors import RegvaultError
from regvault.storage.store import ObjectStore, VersionRecord

FORMAT = "regvault-journal/1"
# the header the registry's notifications carry the shared secret in; on the instance the rendered config
# holds PLACEHOLDER until the launch script puts the secret (read with the instance role) in its place
SECRET_HEADER = "x-regvault-journal-secret"  # noqa: S105 - a header name, not a secret
PLACEHOLDER = "__REGVAULT_JOURNAL_SECRET__"
KEPT_ACTIONS = ("push", "delete")
BLOB = "application/octet-stream"


@dataclass(frozen=True)
class JournalEntry:
    event_id: str
    action: str  # "push" | "delete"
    repository: str
    tag: str | None
    digest: str | None
    media_type: str | None
    actor: str | None
    at: str  # ISO-8601, as the registry stamped it
    request_id: str | None
    source_address: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class JournalStore(ObjectStore, Protocol):
    def list_current(self, prefix: str, page_size: int = ...) -> Iterable[list[VersionRecord]]: ...


def journal_prefix(bucket: str, root: str) -> str:
    return f"journal/{bucket}/{root.replace('/', '_') or '_'}/"


def keep(entries: Iterable[JournalEntry]) -> list[JournalEntry]:
    """Pushes and deletes of manifests (a tag or a manifest digest); pulls and blob uploads are not
    kept: they say nothing about who moved a tag."""
    return [e for e in entries if e.action in KEPT_ACTIONS and (e.tag or e.media_type != BLOB)]


def batch_key(bucket: str, root: str, entries: list[JournalEntry], day: datetime) -> str:
    ids = "\n".join(sorted(e.event_id for e in entries))
    digest = hashlib.sha256(ids.encode()).hexdigest()[:32]
    return f"{journal_prefix(bucket, root)}{day:%Y/%m/%d}/{digest}.json"


def record_batch(
    sink: ObjectStore, bucket: str, root: str, entries: list[JournalEntry], received: datetime
) -> str | None:
    """Write one batch (nothing when no entry is kept); returns its key."""
    kept = keep(entries)
    if not kept:
        return None
    key = batch_key(bucket, root, kept, received)
    doc = {"format": FORMAT, "received": received.isoformat(), "events": [e.as_dict() for e in kept]}
    sink.put_bytes(key, json.dumps(doc, separators=(",", ":")).encode(), "application/json")
    return key


def read_journal(
    store: JournalStore, bucket: str, root: str, days: Iterable[date] | None = None
) -> list[JournalEntry]:
    """Every kept event of this registry (or of the given days' partitions only), oldest first, each
    event id once. A batch that is not ours is skipped."""
    seen: dict[str, JournalEntry] = {}
    prefix = journal_prefix(bucket, root)
    prefixes = [f"{prefix}{d:%Y/%m/%d}/" for d in days] if days is not None else [prefix]
    records = (r for p in prefixes for page in store.list_current(p) for r in page)
    for record in records:
        try:
            doc = json.loads(store.get_bytes(record.key, max_bytes=8 * 1024 * 1024))
            if doc.get("format") != FORMAT:
                continue
            for raw in doc["events"]:
                entry = JournalEntry(**raw)
                seen.setdefault(entry.event_id, entry)
        except (RegvaultError, ValueError, KeyError, TypeError):
            continue
    return sorted(seen.values(), key=lambda e: (e.at, e.event_id))


class Journal:
    """Who set what: the actor of the latest push of ``repository:tag`` to ``digest``."""

    def __init__(self, entries: list[JournalEntry]) -> None:
        self.entries = entries
        self._by_tag: dict[tuple[str, str, str], JournalEntry] = {}
        for e in entries:
            if e.action == "push" and e.tag and e.digest:
                self._by_tag[(e.repository, e.tag, e.digest)] = e  # oldest first: the latest wins

    def pushed(self, repository: str, tag: str, digest: str) -> JournalEntry | None:
        return self._by_tag.get((repository, tag, digest))

    def actor_of(self, repository: str, tag: str, digest: str) -> str | None:
        entry = self.pushed(repository, tag, digest)
        return entry.actor if entry is not None else None


def recent_actor_lookup(
    store: JournalStore, bucket: str, root: str, now: datetime, attempts: int = 3, pause: float = 1.5
) -> Callable[[str, str, str], str | None]:
    """Who pushed ``repository:tag`` at ``digest``, from today's and yesterday's journal: for the guard,
    whose event may arrive before the registry's notification does (it asks again, ``attempts`` times,
    ``pause`` seconds apart)."""
    import time

    def lookup(repository: str, tag: str, digest: str) -> str | None:
        for attempt in range(attempts):
            days = [now.date(), (now - timedelta(days=1)).date()]
            actor = Journal(read_journal(store, bucket, root, days)).actor_of(repository, tag, digest)
            if actor is not None or attempt == attempts - 1:
                return actor
            time.sleep(pause)
        return None

    return lookup
