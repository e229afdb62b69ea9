"""``regvault status``: the bucket's posture, whether the registry answers, and the last audit."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

from regvault.audit.posture import posture_findings
from regvault.errors import ObjectMissing
from regvault.reports.scheduled import reports_prefix
from regvault.storage.layout import RegistryLayout
from regvault.storage.store import ObjectStore, RegistryStore


def registry_reachable(url: str, ca_file: str | None = None, timeout: float = 5) -> dict[str, Any]:
    """GET <url>/v2/: 401 (auth on) or 200 means the registry answers."""
    target = url.rstrip("/") + "/v2/"
    context = ssl.create_default_context(cafile=ca_file) if target.startswith("https:") else None
    try:
        with urllib.request.urlopen(target, timeout=timeout, context=context) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return {"url": target, "reachable": False, "detail": str(getattr(exc, "reason", exc))[:200]}
    return {
        "url": target,
        "reachable": status in (200, 401),
        "http_status": status,
        "auth": "required" if status == 401 else "open",
    }


def gather(
    store: RegistryStore,
    layout: RegistryLayout,
    registry_url: str | None = None,
    ca_file: str | None = None,
    reports: ObjectStore | None = None,
) -> dict[str, Any]:
    posture = store.posture()
    findings, window = posture_findings(posture, layout)
    out: dict[str, Any] = {
        "bucket": store.bucket,
        "root": layout.root,
        "posture": {
            "versioning": posture.versioning or "never enabled",
            "recovery_window_days": window,
            "findings": [f.as_dict() for f in findings],
        },
        "registry": registry_reachable(registry_url, ca_file) if registry_url else None,
        "last_audit": None,
    }
    if reports is not None:
        key = reports_prefix(store.bucket, layout.root) + "latest.json"
        try:
            doc = json.loads(reports.get_bytes(key, max_bytes=64 * 1024 * 1024))
            out["last_audit"] = {
                "finished_at": doc["finished_at"],
                "summary": doc["summary"],
                "report": f"s3://{reports.bucket}/{key}",
            }
        except ObjectMissing:
            out["last_audit"] = {"report": f"s3://{reports.bucket}/{key}", "missing": True}
    problems = [f for f in findings if f.severity == "error"]
    if out["registry"] is not None and not out["registry"]["reachable"]:
        problems.append("registry")  # type: ignore[arg-type]
    if out["last_audit"] and out["last_audit"].get("summary", {}).get("errors"):
        problems.append("audit")  # type: ignore[arg-type]
    out["ok"] = not problems
    return out
