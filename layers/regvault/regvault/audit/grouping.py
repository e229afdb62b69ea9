"""Findings grouped by image: for each tag whose image is broken (or that was deleted), what is missing,
whether S3 still holds a version of every missing piece, and the one command that repairs it.

The flat ``findings`` list stays the report's stable contract; ``images`` is this grouping.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from regvault.audit.findings import ERROR, Finding, TagReport

DELETED = "TAG_DELETED"
MOVED = "PROTECTED_TAG_MOVED"  # the guard's pin: the digest the tag goes back to


@dataclass
class ImageGroup:
    repository: str
    tag: str
    digest: str | None  # the live tag's current digest; a deleted tag's last one
    state: str  # "live" | "deleted"
    findings: list[Finding] = field(default_factory=list)

    @property
    def recoverable(self) -> bool:
        """Every broken piece has a version left to copy forward (and the digest is known)."""
        return self.digest is not None and all(f.recoverable is True for f in self.findings)

    @property
    def command(self) -> str | None:
        """The restore that repairs it: in place for a live tag (copy forward what is missing, the tag
        stays where it is), the last digest for a deleted tag. None when it cannot be repaired."""
        if not self.recoverable:
            return None
        return f"regvault restore {self.repository}:{self.tag} --to {self.digest} --apply"

    @property
    def missing(self) -> list[dict[str, Any]]:
        return [
            {"code": f.code, "key": f.key, "digest": f.digest, "recoverable": f.recoverable}
            for f in self.findings
            if f.code not in (DELETED, MOVED)
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "state": self.state,
            "codes": sorted({f.code for f in self.findings}),
            "missing": self.missing,
            "recoverable": self.recoverable,
            "command": self.command,
        }


def group_findings(findings: list[Finding], tags: list[TagReport]) -> list[ImageGroup]:
    """Error findings of live tags, by tag, and deleted tags (TAG_DELETED): one group each, in the order
    of the tags (repository, tag). Errors that name no tag (a bucket setting, a malformed link nobody
    uses) stay in the flat list only."""
    by_tag = {(t.repository, t.tag): t for t in tags}
    groups: dict[tuple[str, str], ImageGroup] = {}
    for f in findings:
        if f.repository is None or f.tag is None:
            continue
        if f.severity != ERROR and f.code != DELETED:
            continue
        tag = by_tag.get((f.repository, f.tag))
        deleted = f.code == DELETED or (tag is not None and tag.deleted)
        key = (f.repository, f.tag)
        if key not in groups:
            digest = f.digest if f.code == DELETED else (tag.current if tag is not None else None)
            groups[key] = ImageGroup(f.repository, f.tag, digest, "deleted" if deleted else "live")
        groups[key].findings.append(f)
        if f.code == MOVED:
            groups[key].digest = f.digest
    return [groups[k] for k in sorted(groups)]
