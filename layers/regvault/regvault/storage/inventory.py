"""One walk of ListObjectVersions over a registry's prefix into an in-memory, version-aware model.

For every key: its versions (data versions and delete markers) newest first, with timestamps, size
and ETag — never object bodies, so memory grows with keys and versions, not with bytes. The walk can
be split into disjoint prefix shards that run in parallel and merge into the same result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from regvault.storage.store import RegistryStore, VersionRecord


@dataclass(slots=True)
class ObjectVersion:
    version_id: str
    last_modified: datetime
    is_delete_marker: bool
    size: int
    etag: str | None
    is_latest: bool


def _order(v: ObjectVersion) -> tuple[bool, float, bool]:
    # Newest first. S3 lists a key's versions newest first but boto3 splits versions and delete
    # markers apart, and LastModified has one-second resolution: on a tie, the latest stays first
    # and a delete marker is taken as newer than a data version (deletes follow writes).
    return (not v.is_latest, -v.last_modified.timestamp(), not v.is_delete_marker)


class KeyHistory:
    """All versions of one key, newest first."""

    __slots__ = ("key", "versions")

    def __init__(self, key: str) -> None:
        self.key = key
        self.versions: list[ObjectVersion] = []

    @property
    def latest(self) -> ObjectVersion | None:
        return self.versions[0] if self.versions else None

    @property
    def current(self) -> ObjectVersion | None:
        """The version a plain GET returns now; None when the key is delete-marked."""
        latest = self.latest
        return latest if latest is not None and not latest.is_delete_marker else None

    @property
    def deleted(self) -> bool:
        return self.current is None

    @property
    def data_versions(self) -> list[ObjectVersion]:
        return [v for v in self.versions if not v.is_delete_marker]

    @property
    def first_written(self) -> datetime | None:
        data = self.data_versions
        return data[-1].last_modified if data else None

    def version_at(self, when: datetime) -> ObjectVersion | None:
        """The data version a GET would have returned at ``when`` (None: absent or deleted then)."""
        for v in self.versions:
            if v.last_modified <= when:
                return None if v.is_delete_marker else v
        return None

    def __repr__(self) -> str:
        return f"KeyHistory({self.key!r}, {len(self.versions)} versions)"


@dataclass(slots=True)
class ScratchSummary:
    """What is kept of a group of scratch keys (one registry upload) that still has live keys: how
    many, and when the newest of them was written. Finished uploads (all delete-marked) keep nothing."""

    keys: int = 0
    newest_live: datetime | None = None


# Maps a key to its scratch group (e.g. (repository, upload id)) or None for a key to keep in full.
ScratchGrouper = Callable[[str], tuple[str, str] | None]


class Inventory:
    """Keys below a prefix with their version histories.

    Keys a ``scratch`` grouper claims (the registry's upload scratch: three quarters of a registry's
    versions, none of which an audit or a restore reads) are folded into one ``ScratchSummary`` per
    group instead of a full history: memory then grows with images, not with uploads.
    """

    def __init__(self, prefix: str = "", scratch: ScratchGrouper | None = None) -> None:
        self.prefix = prefix
        self.keys: dict[str, KeyHistory] = {}
        self.scratch_grouper = scratch
        # only groups with a live key are kept: a finished upload (all delete-marked) needs nothing
        self.scratch: dict[tuple[str, str], ScratchSummary] = {}
        self.scratch_keys = 0
        self._last_key: tuple[str, tuple[str, str] | None] = ("", None)
        self.object_versions = 0
        self.delete_markers = 0
        self.pages = 0
        # scratch folders whose versions were not listed (their live keys were), and those live keys
        self.scratch_folders_skipped = 0
        self.live_scratch_keys = 0
        self._shared: dict[Any, Any] = {}
        # bytes of folded scratch versions: current, noncurrent, and noncurrent by the day written
        self.scratch_bytes_current = 0
        self.scratch_bytes_noncurrent = 0
        self.scratch_noncurrent_by_day: dict[int, int] = {}

    def _add_scratch(self, group: tuple[str, str], record: VersionRecord) -> None:
        if not record.is_delete_marker:  # what scratch stores, and since when (for usage's what-if)
            if record.is_latest:
                self.scratch_bytes_current += record.size
            else:
                self.scratch_bytes_noncurrent += record.size
                day = record.last_modified.date().toordinal()
                self.scratch_noncurrent_by_day[day] = self.scratch_noncurrent_by_day.get(day, 0) + record.size
        if not record.is_latest:  # one latest record per key: it says whether the key is live
            return
        self.scratch_keys += 1
        if record.is_delete_marker:
            return
        summary = self.scratch.get(group)
        if summary is None:
            summary = self.scratch[group] = ScratchSummary()
        summary.keys += 1
        if summary.newest_live is None or record.last_modified > summary.newest_live:
            summary.newest_live = record.last_modified

    def _group(self, key: str) -> tuple[str, str] | None:
        last_key, last_group = self._last_key  # a key's versions come one after another
        if key != last_key:
            assert self.scratch_grouper is not None
            last_group = self.scratch_grouper(key)
            self._last_key = (key, last_group)
        return last_group

    def add(self, record: VersionRecord) -> None:
        if self.scratch_grouper is not None:
            group = self._group(record.key)
            if group is not None:
                self._add_scratch(group, record)
                self.object_versions += 1
                if record.is_delete_marker:
                    self.delete_markers += 1
                return
        history = self.keys.get(record.key)
        if history is None:
            history = self.keys[record.key] = KeyHistory(record.key)
        # one object per distinct ETag and timestamp: a digest's links in many repositories share an
        # ETag, and a push writes many keys within one second (memory grows with what is distinct)
        shared = self._shared
        etag = record.etag
        if etag is not None:
            etag = shared.setdefault(etag, etag)
        history.versions.append(
            ObjectVersion(
                record.version_id,
                shared.setdefault(record.last_modified, record.last_modified),
                record.is_delete_marker,
                record.size,
                etag,
                record.is_latest,
            )
        )
        self.object_versions += 1
        if record.is_delete_marker:
            self.delete_markers += 1

    def add_page(self, records: Iterable[VersionRecord]) -> None:
        for record in records:
            self.add(record)
        self.pages += 1

    def finalize(self) -> Inventory:
        for history in self.keys.values():
            history.versions.sort(key=_order)
        return self

    def merge(self, other: Inventory) -> Inventory:
        """Merge a disjoint shard into this inventory."""
        overlap = self.keys.keys() & other.keys.keys()
        if overlap:
            raise ValueError(f"shards overlap on {len(overlap)} keys, e.g. {next(iter(overlap))!r}")
        self.keys.update(other.keys)
        self.scratch_keys += other.scratch_keys
        for group, summary in other.scratch.items():
            mine = self.scratch.setdefault(group, ScratchSummary())
            mine.keys += summary.keys
            if summary.newest_live is not None and (
                mine.newest_live is None or summary.newest_live > mine.newest_live
            ):
                mine.newest_live = summary.newest_live
        self.object_versions += other.object_versions
        self.delete_markers += other.delete_markers
        self.pages += other.pages
        self.scratch_folders_skipped += other.scratch_folders_skipped
        self.scratch_bytes_current += other.scratch_bytes_current
        self.scratch_bytes_noncurrent += other.scratch_bytes_noncurrent
        for day, size in other.scratch_noncurrent_by_day.items():
            self.scratch_noncurrent_by_day[day] = self.scratch_noncurrent_by_day.get(day, 0) + size
        self.live_scratch_keys += other.live_scratch_keys
        return self

    def get(self, key: str) -> KeyHistory | None:
        return self.keys.get(key)

    def __iter__(self) -> Iterator[KeyHistory]:
        return iter(self.keys.values())

    def __len__(self) -> int:
        """Keys held in full, plus folded scratch keys."""
        return len(self.keys) + self.scratch_keys


Progress = Callable[[int, int], None]  # (pages so far, versions so far) of one shard

# Maps a key to the scratch folder it lies in (listed current-only by a walk that skips scratch), or None.
ScratchFolder = Callable[[str], str | None]

# After every key below a folder (a KeyMarker is exclusive; no key has a character above this one).
_PAST = "\U0010ffff"


def walk(
    lister: RegistryStore,
    prefix: str,
    *,
    page_size: int = 1000,
    progress: Progress | None = None,
    scratch: ScratchGrouper | None = None,
    skip_scratch: ScratchFolder | None = None,
    after: str | None = None,
    through: str | None = None,
) -> Inventory:
    """Walk every version below ``prefix`` with paginated ListObjectVersions calls; only the keys after
    ``after`` and up to ``through`` (included) when given (one range of a sharded walk).

    With ``skip_scratch``: when a page ends inside a scratch folder (an upload folder of the registry,
    written and delete-marked by every push), the folder's versions are not listed on: its live keys
    are listed instead (ListObjectsV2, one request for a few keys) and the walk goes on after it. The
    folder's versions already on the page are dropped, so every scratch key is counted once."""
    inventory = Inventory(prefix, scratch)
    lo, hi = after or "", through
    cursor = after
    skipped: set[str] = set()
    while True:
        jump = None
        for page in lister.list_versions(prefix, page_size=page_size, after=cursor):
            if after is None and through is None:
                records = page  # one whole walk: no per-record test in the hottest loop
            else:
                records = [r for r in page if r.key > lo and (hi is None or r.key <= hi)]
            # a full page that ends inside a scratch folder (a last page has nothing left to skip)
            full = len(page) >= page_size and bool(records)
            folder = skip_scratch(records[-1].key) if skip_scratch is not None and full else None
            if folder is not None and folder not in skipped:
                skipped.add(folder)
                kept = [r for r in records if not r.key.startswith(folder)]
                inventory.add_page(kept)
                # listed, then left to the live-key listing: counted as read, not kept
                inventory.object_versions += len(records) - len(kept)
                inventory.delete_markers += sum(1 for r in records[len(kept) :] if r.is_delete_marker)
                _add_live(inventory, lister, folder, page_size, lo, hi)
                jump = folder + _PAST
            else:
                inventory.add_page(records)
            if progress is not None:
                progress(inventory.pages, inventory.object_versions)
            if jump is not None or (through is not None and page and page[-1].key > through):
                break  # a jump past a scratch folder, or the rest belongs to the next range
        if jump is None or (through is not None and jump > through):
            break
        cursor = jump
    inventory.scratch_folders_skipped = len(skipped)
    return inventory.finalize()


def _add_live(
    inventory: Inventory, lister: RegistryStore, folder: str, page_size: int, lo: str, hi: str | None
) -> None:
    for page in lister.list_current(folder, page_size=page_size):
        inventory.live_scratch_keys += len(page)
        inventory.add_page([r for r in page if r.key > lo and (hi is None or r.key <= hi)])


def walk_shards(
    lister: RegistryStore,
    prefix: str,
    bounds: list[str],
    *,
    workers: int = 4,
    page_size: int = 1000,
    progress: Progress | None = None,
    scratch: ScratchGrouper | None = None,
    skip_scratch: ScratchFolder | None = None,
) -> Inventory:
    """Walk the key ranges ``bounds`` cut ``prefix`` into (``RegistryLayout.shard_bounds``) in parallel
    and merge them: the same inventory as one walk, in about 1/workers of the time for a big bucket."""
    ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
    merged = Inventory(prefix, scratch)
    counts: dict[int, tuple[int, int]] = {}
    lock = threading.Lock()

    def shard_progress(shard: int) -> Progress | None:
        if progress is None:
            return None

        def report(pages: int, versions: int) -> None:  # the totals over every shard so far
            with lock:
                counts[shard] = (pages, versions)
                total = (sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
                progress(*total)

        return report

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [
            pool.submit(
                walk,
                lister,
                prefix,
                page_size=page_size,
                progress=shard_progress(k),
                scratch=scratch,
                skip_scratch=skip_scratch,
                after=a,
                through=b,
            )
            for k, (a, b) in enumerate(ranges)
        ]
        for future in futures:
            merged.merge(future.result())
    return merged


def repository_bounds(lister: RegistryStore, repositories_prefix: str, wide: int = 64) -> list[str]:
    """Where a sharded walk cuts the repositories: every repository folder one level down, and a level
    deeper when there are fewer than ``wide`` (``team/app`` names nest); upload, link and manifest
    folders (``_...``) are not cut. A few delimiter listings (deleted repositories are found too)."""
    first = lister.list_prefixes(repositories_prefix)
    if len(first) >= wide:
        return first
    out: list[str] = []
    for folder in first:
        out.append(folder)
        out += [p for p in lister.list_prefixes(folder) if not p[len(folder) :].startswith("_")]
    return out
