"""The scheduled audit's side effects: reports written to the reports bucket, an alert on errors.

Never writes to the registry bucket: the sink is a separate store on the reports bucket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from regvault.audit.findings import AuditReport
from regvault.errors import RegvaultError
from regvault.images.manifest_cache import ManifestCache
from regvault.reports.render import to_html, to_markdown
from regvault.storage.store import ObjectStore


class Alerts(Protocol):
    def publish(self, subject: str, message: str) -> None: ...


def report_prefix(report: AuditReport) -> str:
    return reports_prefix(report.bucket, report.root)


def reports_prefix(bucket: str, root: str) -> str:
    """Where the reports of one registry (bucket + root) go in the reports bucket."""
    return f"audits/{bucket}/{root.replace('/', '_') or '_'}/"


def publish_report(report: AuditReport, sink: ObjectStore, alerts: Alerts | None) -> dict[str, Any]:
    """Write ``<stamp>.json``, ``.md`` and ``.html`` (and ``latest.*``); alert when errors were found."""
    prefix = report_prefix(report)
    stamp = report.started_at.strftime("%Y/%m/%d/%H%M%SZ")
    document = json.dumps(report.as_dict(), indent=2).encode()
    markdown = to_markdown(report).encode()
    page = to_html(report).encode()
    keys = {
        "json": f"{prefix}{stamp}.json",
        "markdown": f"{prefix}{stamp}.md",
        "html": f"{prefix}{stamp}.html",
    }
    sink.put_bytes(keys["json"], document, "application/json")
    sink.put_bytes(keys["markdown"], markdown, "text/markdown; charset=utf-8")
    sink.put_bytes(keys["html"], page, "text/html; charset=utf-8")
    sink.put_bytes(f"{prefix}latest.json", document, "application/json")
    sink.put_bytes(f"{prefix}latest.md", markdown, "text/markdown; charset=utf-8")
    sink.put_bytes(f"{prefix}latest.html", page, "text/html; charset=utf-8")
    alerted = False
    s = report.summary
    if alerts is not None and s["errors"]:
        codes = sorted({f.code for f in report.findings if f.severity == "error"})
        alerts.publish(
            f"regvault: {s['errors']} error(s) in registry bucket {report.bucket}",
            f"The audit of s3://{report.bucket}/{report.root} found {s['errors']} error(s) "
            f"({', '.join(codes)}) and {s['warnings']} warning(s).\n"
            f"Report: s3://{sink.bucket}/{keys['markdown']}\n",
        )
        alerted = True
    return {
        "reports": {k: f"s3://{sink.bucket}/{v}" for k, v in keys.items()},
        "alerted": alerted,
        "summary": s,
    }


# --- the manifest cache between scheduled audits ----------------------------------------------------


MAX_CACHE_BYTES = 256 * 1024 * 1024


def manifest_cache_key(bucket: str, root: str) -> str:
    return f"{reports_prefix(bucket, root)}manifest-cache.json.gz"


def load_manifest_cache(store: ObjectStore, key: str) -> ManifestCache:
    """The cache the last audit left; empty (every manifest read) when there is none or it is unreadable.
    Without s3:ListBucket on the reports bucket a missing key reads as AccessDenied: also "none"."""
    try:
        data = store.get_bytes(key, max_bytes=MAX_CACHE_BYTES)
    except RegvaultError as exc:
        cache = ManifestCache()
        cache.problem = f"no manifest cache read ({type(exc).__name__}): every manifest is read"
        return cache
    return ManifestCache.loads(data)


def save_manifest_cache(store: ObjectStore, key: str, cache: ManifestCache) -> None:
    store.put_bytes(key, cache.dumps(), "application/gzip")


@dataclass(frozen=True)
class ReportsBucketCache:
    """The manifest cache of one registry (bucket + root), kept in the reports bucket beside its reports:
    the ``ManifestCacheStore`` the scheduled audit passes to ``regvault.audit.usecase.audit_registry``."""

    store: ObjectStore
    key: str

    @classmethod
    def of(cls, store: ObjectStore, bucket: str, root: str) -> ReportsBucketCache:
        return cls(store, manifest_cache_key(bucket, root))

    def load(self) -> ManifestCache:
        return load_manifest_cache(self.store, self.key)

    def save(self, cache: ManifestCache) -> None:
        save_manifest_cache(self.store, self.key, cache)


def last_audit_size(store: ObjectStore, bucket: str, root: str) -> int | None:
    """How many object versions the last published audit of this registry listed; None when there is no
    readable last report (the first audit, or a report that is not ours)."""
    try:
        data = store.get_bytes(f"{reports_prefix(bucket, root)}latest.json", max_bytes=64 * 1024 * 1024)
        size = json.loads(data)["summary"]["object_versions"]
    except (RegvaultError, ValueError, KeyError, TypeError):
        return None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def summary_metrics(summary: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(metric name, value, Powertools MetricUnit name) of one audit, as every audit Lambda emits them."""
    return [
        ("FindingsError", summary["errors"], "Count"),
        ("FindingsWarning", summary["warnings"], "Count"),
        ("FindingsInfo", summary["infos"], "Count"),
        ("ObjectVersionsScanned", summary["object_versions"], "Count"),
        ("S3Requests", summary["s3_requests"], "Count"),
        ("ManifestsFromCache", summary["manifests_from_cache"], "Count"),
        ("AuditDuration", summary["duration_s"], "Seconds"),
    ]
