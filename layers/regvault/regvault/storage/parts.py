"""An inventory (or one key range of it) as bytes: what a distributed audit's worker hands the reduce step.

Gzipped JSON with one row per key (its versions newest first) and one per folded upload, so a part holds
what the rules read and nothing else: no object bodies, no upload scratch versions. A part that is not
one (truncated, edited, another format) is refused with the reason, never half read.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from typing import Any

from regvault.errors import InvalidInput
from regvault.storage.inventory import Inventory, KeyHistory, ObjectVersion, ScratchSummary

FORMAT = "regvault-inventory-part/1"
_COUNTERS = (
    "object_versions",
    "delete_markers",
    "pages",
    "scratch_keys",
    "scratch_folders_skipped",
    "live_scratch_keys",
    "scratch_bytes_current",
    "scratch_bytes_noncurrent",
)


def encode_part(inventory: Inventory, requests: int = 0) -> bytes:
    """The inventory as a part; ``requests``: the S3 requests its listing took (the report counts them)."""
    doc = {
        "format": FORMAT,
        "prefix": inventory.prefix,
        "requests": requests,
        "counts": {name: getattr(inventory, name) for name in _COUNTERS},
        "keys": [
            [
                h.key,
                [
                    [
                        v.version_id,
                        v.last_modified.isoformat(),
                        v.is_delete_marker,
                        v.size,
                        v.etag,
                        v.is_latest,
                    ]
                    for v in h.versions
                ],
            ]
            for h in inventory
        ],
        "scratch": [
            [repo, upload, s.keys, s.newest_live.isoformat() if s.newest_live else None]
            for (repo, upload), s in inventory.scratch.items()
        ],
        # folded scratch bytes by the day written (ordinal), for usage's what-if window
        "scratch_noncurrent_by_day": [
            [day, size] for day, size in inventory.scratch_noncurrent_by_day.items()
        ],
    }
    return gzip.compress(json.dumps(doc, separators=(",", ":")).encode(), compresslevel=5)


def decode_part(body: bytes, where: str) -> tuple[Inventory, int]:
    """(the inventory, the requests its listing took) from ``encode_part``'s bytes; ``where`` names the
    part in the error."""
    try:
        doc = json.loads(gzip.decompress(body))
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"format is not {FORMAT}")
        inventory = Inventory(str(doc["prefix"]))
        for name in _COUNTERS:
            setattr(inventory, name, int(doc["counts"][name]))
        for key, versions in doc["keys"]:
            history = inventory.keys[str(key)] = KeyHistory(str(key))
            history.versions = [_version(v) for v in versions]
        for repo, upload, keys, newest in doc["scratch"]:
            inventory.scratch[(str(repo), str(upload))] = ScratchSummary(
                int(keys), datetime.fromisoformat(newest) if newest else None
            )
        for day, size in doc["scratch_noncurrent_by_day"]:
            inventory.scratch_noncurrent_by_day[int(day)] = int(size)
        return inventory, int(doc["requests"])
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{where} is not an audit part regvault wrote: {exc}") from None


def _version(row: list[Any]) -> ObjectVersion:
    version_id, when, is_delete_marker, size, etag, is_latest = row
    moment = datetime.fromisoformat(when)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a zone: {when!r}")
    return ObjectVersion(
        str(version_id),
        moment,
        bool(is_delete_marker),
        int(size),
        None if etag is None else str(etag),
        bool(is_latest),
    )
