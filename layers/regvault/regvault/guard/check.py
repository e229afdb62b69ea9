"""The audit's side of the guard: protected tags that moved and were not put back (an event lost, the
guard failing or switched off). Read-only: one GET per protected tag, of the pin the guard wrote."""

from __future__ import annotations

import json

from regvault.audit.findings import Finding, TagReport
from regvault.errors import ObjectMissing, RegvaultError
from regvault.guard.patterns import Protection
from regvault.storage.digest import Digest
from regvault.storage.layout import RegistryLayout, TagCurrentLink
from regvault.storage.store import RegistryStore


def moved_protected_tags(
    store: RegistryStore, layout: RegistryLayout, protection: Protection, tags: list[TagReport]
) -> list[Finding]:
    """``PROTECTED_TAG_MOVED`` for each protected tag that no longer points at its pin. A protected tag
    the guard has not pinned yet (no event seen) is not judged: nothing says what it should hold."""
    findings = []
    for tag in tags:
        if not protection.protects(tag.repository, tag.tag):
            continue
        try:
            doc = json.loads(store.get_bytes(layout.guard_pin_key(tag.repository, tag.tag), max_bytes=4096))
            pinned = str(Digest.parse(doc["digest"]))
        except ObjectMissing:
            continue
        except (RegvaultError, ValueError, KeyError, TypeError):
            continue  # not a pin the guard wrote
        if tag.current == pinned and not tag.deleted:
            continue
        entry = next((h for h in tag.history if h.digest == pinned), None)
        now = "was deleted" if tag.deleted or tag.current is None else f"points at {tag.current[:19]}…"
        findings.append(
            Finding(
                "PROTECTED_TAG_MOVED",
                f"{tag.repository}:{tag.tag} is protected but {now}; it keeps {pinned[:19]}… "
                "(not put back: an event lost, or the guard failed): "
                f"regvault restore {tag.repository}:{tag.tag} --to {pinned} --apply",
                repository=tag.repository,
                tag=tag.tag,
                digest=pinned,
                key=layout.key(TagCurrentLink(tag.repository, tag.tag)),
                recoverable=entry.recoverable if entry is not None else None,
            )
        )
    return findings
