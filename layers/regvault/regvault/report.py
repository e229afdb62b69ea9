"""Render an audit report as Markdown (the same data as the JSON report)."""

from __future__ import annotations

from typing import Any

from .findings import AuditReport


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _short(digest: str | None) -> str:
    return f"`{digest[:19]}`" if digest else ""


def _recoverable(value: bool | None) -> str:
    return {True: "yes", False: "**no**", None: ""}[value]


def to_markdown(report: AuditReport) -> str:
    s = report.summary
    verdict = "clean" if not s["errors"] else f"{s['errors']} error(s)"
    lines = [
        f"# regvault audit: {verdict}",
        "",
        f"Bucket `{report.bucket}`, root `{report.root or '(empty)'}`; "
        f"{report.started_at:%Y-%m-%d %H:%M:%S} to {report.finished_at:%H:%M:%S} UTC.",
        "",
        "| repositories | tags | deleted tags | manifests | blobs | object versions | delete markers "
        "| S3 requests | errors | warnings | info |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {s['repositories']} | {s['tags']} | {s['deleted_tags']} | {s['manifests']} | {s['blobs']} "
        f"| {s['object_versions']} | {s['delete_markers']} | {s['s3_requests']} | {s['errors']} "
        f"| {s['warnings']} | {s['infos']} |",
        "",
    ]
    if report.recovery_window_days is not None:
        lines += [
            f"Recovery window: noncurrent versions expire after {report.recovery_window_days} days.",
            "",
        ]
    lines += ["## Findings", ""]
    if report.findings:
        lines += [
            "| severity | code | repository | tag | digest | recoverable | message |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {f.severity} | `{f.code}` | {_cell(f.repository)} | {_cell(f.tag)} | {_short(f.digest)} "
            f"| {_recoverable(f.recoverable)} | {_cell(f.message)} |"
            for f in report.findings
        ]
    else:
        lines.append("None.")
    lines += ["", "## Tags and their history", ""]
    lines += [
        "| repository | tag | state | current | earlier images | not restorable |",
        "|---|---|---|---|---:|---|",
    ]
    for t in report.tags:
        earlier = [h for h in t.history if not h.current]
        lost = [h.digest[:19] for h in t.history if h.recoverable is False]
        lines.append(
            f"| {_cell(t.repository)} | {_cell(t.tag)} | {'deleted' if t.deleted else 'live'} "
            f"| {_short(t.current)} | {len(earlier)} | {', '.join(f'`{d}`' for d in lost)} |"
        )
    return "\n".join(lines) + "\n"


def history_markdown(doc: dict[str, Any]) -> str:
    """``regvault history --format markdown``: one table per tag."""
    lines = [f"# Tag history: bucket `{doc['bucket']}`, root `{doc['root'] or '(empty)'}`", ""]
    for t in doc["tags"]:
        lines += [f"## {_cell(t['repository'])}:{_cell(t['tag'])} ({t['state']})", ""]
        lines += ["| digest | pointed at | current | media type | size | restorable | gone for good |"]
        lines += ["|---|---|---|---|---:|---|---|"]
        for e in t["history"]:
            gone = ", ".join(f"`{k}`" for k in e["missing"])
            lines.append(
                f"| `{e['digest']}` | {e['at'] or '?'} | {'yes' if e['current'] else ''} "
                f"| {_cell(e['media_type'])} | {e['size'] or ''} | {_recoverable(e['recoverable'])} "
                f"| {gone} |"
            )
        lines.append("")
    return "\n".join(lines)
