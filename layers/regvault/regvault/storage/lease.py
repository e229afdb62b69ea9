"""One writer at a time: the lease object regvault's GC, its undo and a restore's apply take before
writing (a restore's plan only reads it).

Taken with a conditional write (``If-None-Match: *``), so two runs cannot both get it. A lease past its
expiry is reported, not taken over: the run that held it may have died half-way, and its run record says
what it did. ``break_stale`` removes an expired lease on request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from regvault.errors import ObjectMissing, RegvaultError
from regvault.storage.layout import RegistryLayout
from regvault.storage.store import RegistryStore

DEFAULT_TTL = timedelta(hours=6)


class LeaseHeld(RegvaultError):
    """Another regvault writer holds the lease (or left a stale one)."""


@dataclass(frozen=True)
class Lease:
    holder: str  # the run id
    operation: str  # "gc" | "gc-undo" | "restore"
    expires: datetime

    def body(self) -> bytes:
        doc = {"holder": self.holder, "operation": self.operation, "expires": self.expires.isoformat()}
        return json.dumps(doc).encode()


def read_lease(store: RegistryStore, layout: RegistryLayout) -> Lease | None:
    try:
        doc = json.loads(store.get_bytes(layout.lease_key, max_bytes=4096))
        return Lease(str(doc["holder"]), str(doc["operation"]), datetime.fromisoformat(doc["expires"]))
    except ObjectMissing:
        return None
    except (ValueError, KeyError, TypeError):
        return Lease("(unreadable)", "(unknown)", datetime.min.replace(tzinfo=None))


def take_lease(
    store: RegistryStore,
    layout: RegistryLayout,
    holder: str,
    operation: str,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
) -> Lease:
    lease = Lease(holder, operation, now + ttl)
    if store.put_if_absent(layout.lease_key, lease.body(), "application/json"):
        return lease
    held = read_lease(store, layout)
    where = f"s3://{store.bucket}/{layout.lease_key}"
    if held is None:  # released between our write and our read: try once more
        if store.put_if_absent(layout.lease_key, lease.body(), "application/json"):
            return lease
        raise LeaseHeld(f"another regvault writer took the lease ({where}) just now; try again")
    if held.expires.tzinfo is not None and held.expires > now:
        raise LeaseHeld(
            f"{held.operation} run {held.holder} holds the lease until {held.expires:%Y-%m-%d %H:%M} UTC "
            f"({where}); wait for it to finish"
        )
    raise LeaseHeld(
        f"a stale lease of {held.operation} run {held.holder} (expired {held.expires:%Y-%m-%d %H:%M}) is in "
        f"{where}: that run may have stopped half-way (see its run record); remove the lease with "
        "`regvault gc --break-lease` once you have checked"
    )


def holder_id(operation: str, now: datetime) -> str:
    """A run id for a lease holder: ``restore-20261130T101500Z-1a2b3c``."""
    import secrets

    return f"{operation}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def release_lease(store: RegistryStore, layout: RegistryLayout, lease: Lease) -> None:
    held = read_lease(store, layout)
    if held is not None and held.holder == lease.holder:
        store.add_delete_marker(layout.lease_key)


def break_stale(store: RegistryStore, layout: RegistryLayout, now: datetime) -> Lease | None:
    """Remove an expired lease; refuse a live one. Returns what was removed (None: there was none)."""
    held = read_lease(store, layout)
    if held is None:
        return None
    if held.expires.tzinfo is not None and held.expires > now:
        raise LeaseHeld(
            f"{held.operation} run {held.holder} holds a live lease until "
            f"{held.expires:%Y-%m-%d %H:%M} UTC: not removed"
        )
    store.add_delete_marker(layout.lease_key)
    return held
