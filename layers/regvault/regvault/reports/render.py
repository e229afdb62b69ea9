"""Render audit reports (Markdown; a self-contained HTML page with its history chart) and tag history
(Markdown)."""

from __future__ import annotations

from typing import Any

from regvault.audit.findings import AuditReport


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
    if s.get("upload_folders_not_listed"):
        lines += [
            f"Upload scratch: the versions of {s['upload_folders_not_listed']} upload folder(s) were not "
            "listed (their live keys were) and are not in the counts above.",
            "",
        ]
    if report.recovery_window_days is not None:
        lines += [
            f"Recovery window: noncurrent versions expire after {report.recovery_window_days} days.",
            "",
        ]
    groups = report.images
    if groups:
        lines += ["## Broken and deleted images: what to do", ""]
        lines += ["| image | state | what is missing | recoverable | repair |", "|---|---|---|---|---|"]
        for g in groups:
            lines.append(
                f"| {_cell(g.repository)}:{_cell(g.tag)} → {_short(g.digest)} | {g.state} "
                f"| {_cell(missing_text(g))} | {'yes' if g.recoverable else '**no**'} "
                f"| {f'`{g.command}`' if g.command else 'not from S3 versions'} |"
            )
        lines += [
            "",
            "`regvault repair --apply` repairs every recoverable live image at once "
            "(`--include-deleted` brings deleted tags back too).",
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
    if report.usage is not None:
        from regvault.reports.usage import TOP, usage_lines, usage_table_markdown

        lines += ["", "## Storage and cost", ""]
        lines += usage_table_markdown(report.usage, TOP)
        lines += ["", *[f"- {line}" for line in usage_lines(report.usage)]]
    lines += ["", "## Tags and their history", ""]
    lines += [
        "| repository | tag | state | current | set by | earlier images | not restorable |",
        "|---|---|---|---|---|---:|---|",
    ]
    for t in report.tags:
        earlier = [h for h in t.history if not h.current]
        lost = [h.digest[:19] for h in t.history if h.recoverable is False]
        lines.append(
            f"| {_cell(t.repository)} | {_cell(t.tag)} | {'deleted' if t.deleted else 'live'} "
            f"| {_short(t.current)} | {_cell(_set_by(t))} | {len(earlier)} "
            f"| {', '.join(f'`{d}`' for d in lost)} |"
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


def _set_by(tag: Any) -> str:
    """Who pushed the tag's current digest (the push journal), blank when unknown."""
    current = next((h for h in tag.history if h.current), None)
    return current.by if current is not None and current.by else ""


def missing_text(group: Any) -> str:
    if any(f.code == "PROTECTED_TAG_MOVED" for f in group.findings) and not group.missing:
        return "the tag moved off its protected digest"
    if group.state == "deleted" and not group.missing:
        return "TAG_DELETED (the tag is gone)"
    codes: dict[str, int] = {}
    for item in group.missing:
        codes[item["code"]] = codes.get(item["code"], 0) + 1
    return ", ".join(f"{n}x {code}" if n > 1 else code for code, n in sorted(codes.items()))


def _images_html(report: AuditReport) -> str:
    from html import escape

    groups = report.images
    if not groups:
        return ""
    rows = "".join(
        f'<tr class="{"info" if g.recoverable else "error"}"><td>{escape(g.repository)}:{escape(g.tag)}</td>'
        f"<td><code>{escape((g.digest or '')[:19])}</code></td><td>{g.state}</td>"
        f"<td>{escape(missing_text(g))}</td><td>{'yes' if g.recoverable else 'no'}</td>"
        f"<td>{f'<code>{escape(g.command)}</code>' if g.command else 'not from S3 versions'}</td></tr>"
        for g in groups
    )
    return (
        "\n<h2>Broken and deleted images: what to do</h2><table><tr><th>image</th><th>digest</th>"
        f"<th>state</th><th>what is missing</th><th>recoverable</th><th>repair</th></tr>{rows}</table>"
        "<p><code>regvault repair --apply</code> repairs every recoverable live image at once "
        "(<code>--include-deleted</code> brings deleted tags back too).</p>"
    )


def to_html(report: AuditReport) -> str:
    """One self-contained HTML file: summary, findings, and each tag's history as an inline SVG."""
    from html import escape

    s = report.summary
    verdict = "clean" if not s["errors"] else f"{s['errors']} error(s)"
    cards = [
        ("errors", s["errors"], "bad" if s["errors"] else "good"),
        ("warnings", s["warnings"], "warn" if s["warnings"] else "good"),
        ("info", s["infos"], ""),
        ("repositories", s["repositories"], ""),
        ("tags", s["tags"], ""),
        ("deleted tags", s["deleted_tags"], ""),
        ("manifests", s["manifests"], ""),
        ("object versions", s["object_versions"], ""),
        ("S3 requests", s["s3_requests"], ""),
    ]
    card_html = "".join(
        f'<div class="card {cls}"><div class="n">{value:,}</div><div class="l">{escape(label)}</div></div>'
        for label, value, cls in cards
    )
    rows = "".join(
        f'<tr class="{f.severity}"><td>{f.severity}</td><td><code>{escape(f.code)}</code></td>'
        f"<td>{escape(f.repository or '')}</td><td>{escape(f.tag or '')}</td>"
        f"<td><code>{escape((f.digest or '')[:19])}</code></td>"
        f"<td>{_recoverable(f.recoverable).replace('**', '')}</td><td>{escape(f.message)}</td></tr>"
        for f in report.findings
    )
    findings = (
        "<table><tr><th>severity</th><th>code</th><th>repository</th><th>tag</th><th>digest</th>"
        f"<th>recoverable</th><th>message</th></tr>{rows}</table>"
        if report.findings
        else "<p class='good'>No findings.</p>"
    )
    window = (
        f"<p>Recovery window: noncurrent versions expire after {report.recovery_window_days} days.</p>"
        if report.recovery_window_days is not None
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>regvault audit: {escape(verdict)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px 32px; color: #1f2328; }}
h1 {{ font-size: 22px; margin: 0 0 4px; }} h2 {{ font-size: 17px; margin: 28px 0 8px; }}
.meta {{ color: #57606a; margin-bottom: 16px; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 10px; }}
.card {{ border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 14px; min-width: 96px; }}
.card .n {{ font-size: 22px; font-weight: 600; }} .card .l {{ color: #57606a; font-size: 12px; }}
.card.bad {{ border-color: #cf222e; color: #cf222e; }} .card.warn {{ border-color: #bf8700; }}
.card.good .n, p.good {{ color: #1a7f37; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: 5px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; }}
th {{ background: #f6f8fa; }} tr.error td:first-child {{ color: #cf222e; font-weight: 600; }}
tr.warning td:first-child {{ color: #9a6700; font-weight: 600; }} tr.info td:first-child {{ color: #0969da; }}
code {{ font: 12px ui-monospace, monospace; }} .legend span {{ margin-right: 16px; }}
</style></head><body>
<h1>regvault audit: {escape(verdict)}</h1>
<div class="meta">bucket <code>{escape(report.bucket)}</code>,
root <code>{escape(report.root or "(empty)")}</code>;
{report.started_at:%Y-%m-%d %H:%M:%S} to {report.finished_at:%H:%M:%S} UTC</div>
<div class="cards">{card_html}</div>{window}{_images_html(report)}
<h2>Findings</h2>{findings}{_usage_html(report)}
<h2>Tags and their history</h2>
<div class="legend"><span style="color:#1a7f37">&#9679; restorable</span>
<span style="color:#cf222e">&#9679; gone for good</span>
<span>&#9711; current</span></div>
{history_svg(report)}
</body></html>
"""


def _usage_html(report: AuditReport) -> str:
    from html import escape

    if report.usage is None:
        return ""
    from regvault.reports.usage import human, usage_lines, usage_svg

    t, cost = report.usage["totals"], report.usage["monthly_usd"]
    cards = [
        ("stored now", human(t["stored_current_bytes"])),
        ("noncurrent (recovery window)", human(t["stored_noncurrent_bytes"])),
        ("upload scratch", human(t["upload_scratch_bytes"])),
        ("orphan blobs", human(t["orphan_blob_bytes"])),
        ("USD per month", f"{cost['total']:.2f}"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="n">{escape(value)}</div><div class="l">{escape(label)}</div></div>'
        for label, value in cards
    )
    notes = "".join(f"<li>{escape(line)}</li>" for line in usage_lines(report.usage))
    return (
        f'\n<h2>Storage and cost</h2><div class="cards">{card_html}</div>'
        f"<ul>{notes}</ul>{usage_svg(report.usage)}"
    )


def history_svg(report: AuditReport) -> str:
    """A timeline per tag: one dot per digest the tag pointed at, placed at the time it was set."""
    from html import escape

    tags = [t for t in report.tags if t.history]
    if not tags:
        return "<p>No tags.</p>"
    times = [h.at.timestamp() for t in tags for h in t.history if h.at is not None]
    low, high = (min(times), max(times)) if times else (0.0, 1.0)
    span = max(high - low, 1.0)
    label_w, plot_w, row_h = 260, 640, 26
    height = row_h * len(tags) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 40}" height="{height}" '
        'role="img" aria-label="tag history timeline">'
    ]
    for i, t in enumerate(tags):
        y = 20 + i * row_h
        name = escape(f"{t.repository}:{t.tag}" + (" (deleted)" if t.deleted else ""))
        colour_of_tag = "#57606a" if t.deleted else "#1f2328"
        parts.append(f'<text x="0" y="{y + 4}" font-size="12" fill="{colour_of_tag}">{name}</text>')
        parts.append(f'<line x1="{label_w}" y1="{y}" x2="{label_w + plot_w}" y2="{y}" stroke="#d0d7de"/>')
        for h in t.history:
            x = label_w + 10 + (plot_w - 20) * (((h.at.timestamp() if h.at else low) - low) / span)
            colour = "#cf222e" if h.recoverable is False else "#1a7f37"
            when = f" {h.at:%Y-%m-%d %H:%M:%S}" if h.at else ""
            title = escape(f"{h.digest[:19]}…{when}" + (f" by {h.by}" if h.by else ""))
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y}" r="5" fill="{colour}"><title>{title}</title></circle>'
            )
            if h.current:
                parts.append(f'<circle cx="{x:.1f}" cy="{y}" r="8.5" fill="none" stroke="#1f2328"/>')
    parts.append(
        f'<text x="{label_w}" y="{height - 4}" font-size="11" fill="#57606a">{escape(_time(low))}</text>'
    )
    parts.append(
        f'<text x="{label_w + plot_w}" y="{height - 4}" font-size="11" fill="#57606a" '
        f'text-anchor="end">{escape(_time(high))}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _time(ts: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
