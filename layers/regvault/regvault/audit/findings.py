"""Audit findings: stable codes, severities, and the report that carries them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ERROR, WARNING, INFO = "error", "warning", "info"

# code -> (severity, what it means); codes are stable identifiers
CODES: dict[str, tuple[str, str]] = {
    "TAG_TARGET_MISSING": (ERROR, "the manifest a live tag points at is not in blobs/"),
    "TAG_DELETED": (WARNING, "a tag was deleted; S3 versions may still hold it"),
    "MANIFEST_MISSING": (WARNING, "a manifest the repository still lists (revision link) is not in blobs/"),
    "MANIFEST_UNPARSEABLE": (ERROR, "a manifest of a live tag is not a manifest regvault can read"),
    "MANIFEST_DIGEST_MISMATCH": (ERROR, "a manifest's bytes do not hash to its digest"),
    "MANIFEST_LEGACY_SCHEMA1": (WARNING, "a live tag points at a Docker schema1 manifest (deprecated)"),
    "CHILD_MANIFEST_MISSING": (ERROR, "an index of a live tag references a manifest that is not in blobs/"),
    "REVISION_LINK_MISSING": (ERROR, "the repository has no revision link for a manifest of a live tag"),
    "BLOB_MISSING": (ERROR, "a config or layer of a live tag is not in blobs/"),
    "BLOB_SIZE_MISMATCH": (ERROR, "a blob's size differs from the size its manifest declares"),
    "BLOB_DIGEST_MISMATCH": (ERROR, "a blob's bytes do not hash to its digest (deep)"),
    "BLOB_OVERWRITTEN": (WARNING, "a content-addressed blob has more than one data version"),
    "LAYER_LINK_MISSING": (ERROR, "a blob of a live tag has no _layers link in that repository"),
    "TAG_INDEX_LINK_MISSING": (WARNING, "a live tag's current digest has no entry in the tag's index"),
    "LINK_MALFORMED": (ERROR, "a link object does not hold exactly the digest its key names"),
    "UNKNOWN_KEY": (INFO, "a key under the registry prefix that the registry layout does not know"),
    "ORPHAN_BLOB": (INFO, "a blob no manifest references (garbage-collect would remove it)"),
    "STALE_UPLOAD": (INFO, "upload scratch older than the grace window"),
    "PROTECTED_TAG_MOVED": (ERROR, "a protected tag no longer points at its pinned digest (not put back)"),
    "TAG_WRITTEN_OUTSIDE_REGISTRY": (
        WARNING,
        "a tag's link got a version no push or delete in the registry's journal explains",
    ),
    "HISTORY_UNRECOVERABLE": (WARNING, "an earlier image of a tag can no longer be restored from S3"),
    "BUCKET_VERSIONING_OFF": (ERROR, "bucket versioning is not enabled: deletes and overwrites lose data"),
    "NONCURRENT_EXPIRATION": (WARNING, "lifecycle rules expire noncurrent versions: the recovery window"),
    "CURRENT_EXPIRATION": (ERROR, "lifecycle rules expire current objects of the registry"),
    "BUCKET_NOT_ENCRYPTED": (WARNING, "no default encryption on the bucket"),
    "PUBLIC_ACCESS_NOT_BLOCKED": (WARNING, "the bucket's public access block is missing or partial"),
    "INSECURE_TRANSPORT_ALLOWED": (WARNING, "no bucket policy denies requests without TLS"),
    "POSTURE_UNREADABLE": (INFO, "a bucket setting could not be read (access denied)"),
}


@dataclass
class Finding:
    code: str
    message: str
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    key: str | None = None
    recoverable: bool | None = None
    severity: str = ""

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown finding code {self.code}")
        if not self.severity:
            self.severity = CODES[self.code][0]

    @classmethod
    def at_key(
        cls,
        code: str,
        message: str,
        key: str,
        digest: object = None,
        recoverable: bool | None = None,
        **where: Any,
    ) -> Finding:
        """A finding about one object: its key, and its digest when it has one."""
        return cls(
            code, message, digest=str(digest) if digest else None, key=key, recoverable=recoverable, **where
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "repository": self.repository,
            "tag": self.tag,
            "digest": self.digest,
            "key": self.key,
            "recoverable": self.recoverable,
            "message": self.message,
        }


@dataclass
class HistoryEntry:
    digest: str
    at: datetime | None  # the most recent time the tag was set to this digest
    current: bool
    media_type: str | None
    size: int | None  # manifest + config + layers (+ children), when known
    recoverable: bool | None
    missing: list[str] = field(default_factory=list)  # keys with no version left
    by: str | None = None  # who pushed it, when the push journal says

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "digest": self.digest,
            "at": self.at.isoformat() if self.at else None,
            "current": self.current,
            "media_type": self.media_type,
            "size": self.size,
            "recoverable": self.recoverable,
            "missing": self.missing,
        }


@dataclass
class TagReport:
    repository: str
    tag: str
    current: str | None
    deleted: bool
    history: list[HistoryEntry]

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository,
            "tag": self.tag,
            "current": self.current,
            "state": "deleted" if self.deleted else "live",
            "history": [h.as_dict() for h in self.history],
        }


SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def finding_order(finding: Finding) -> tuple[int, str, str, str, str]:
    """How every report lists its findings: errors first, then by code and place."""
    f = finding
    return (SEVERITY_ORDER[f.severity], f.code, f.repository or "", f.tag or "", f.key or "")


@dataclass
class AuditReport:
    bucket: str
    root: str
    started_at: datetime
    finished_at: datetime
    summary: dict[str, Any]
    findings: list[Finding]
    tags: list[TagReport]
    recovery_window_days: int | None = None
    usage: dict[str, Any] | None = None  # regvault.usage's document: storage and cost per repository

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == ERROR)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    @property
    def images(self) -> list[Any]:
        """Error findings grouped by image, with the command that repairs each (audit.grouping)."""
        from regvault.audit.grouping import group_findings

        return group_findings(self.findings, self.tags)

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": self.bucket,
            "root": self.root,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "summary": self.summary,
            "recovery_window_days": self.recovery_window_days,
            "findings": [f.as_dict() for f in self.findings],
            "tags": [t.as_dict() for t in self.tags],
            "images": [g.as_dict() for g in self.images],
            **({"usage": self.usage} if self.usage is not None else {}),
        }
