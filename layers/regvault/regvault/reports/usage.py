"""Storage and cost (``regvault.usage``'s document) as text lines, Markdown and an inline SVG chart: for
``regvault usage`` and the usage section of the audit reports."""

from __future__ import annotations

from html import escape
from typing import Any

TOP = 20  # repositories shown in a report's chart and table (the JSON keeps them all)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def usage_lines(doc: dict[str, Any]) -> list[str]:
    t, cost, price = doc["totals"], doc["monthly_usd"], doc["price"]
    window = doc["recovery_window_days"]
    kept = f"{window} days" if window is not None else "versions never expire"
    lines = [
        f"stored now {human(t['stored_current_bytes'])}, in noncurrent versions "
        f"{human(t['stored_noncurrent_bytes'])} (recovery window: {kept}); upload scratch "
        f"{human(t['upload_scratch_bytes'])}, orphan blobs {human(t['orphan_blob_bytes'])}",
        f"monthly: ${cost['total']:.2f} (${cost['current']:.2f} current + ${cost['noncurrent']:.2f} "
        f"noncurrent) at ${price['usd_per_gb_month']}/GB-month ({price['source']})",
    ]
    if t.get("upload_folders_not_listed"):
        lines.append(
            f"the noncurrent scratch of {t['upload_folders_not_listed']} upload folder(s) was not listed "
            "and is not counted (`regvault usage` lists it)"
        )
    if "what_if" in doc:
        w = doc["what_if"]
        lines.append(
            f"with a {w['recovery_days']}-day window: noncurrent {human(w['stored_noncurrent_bytes'])}, "
            f"${w['monthly_usd_noncurrent']:.2f}/month"
        )
    return lines


def by_cost(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Repositories, the most expensive (unique + apportioned shared bytes) first, then by name."""
    rows = doc["repositories"].items()
    return sorted(rows, key=lambda item: (-(item[1]["unique_bytes"] + item[1]["shared_bytes"]), item[0]))


def usage_table_markdown(doc: dict[str, Any], limit: int | None = None) -> list[str]:
    rows = by_cost(doc)
    lines = [
        "| repository | live | unique | shared (apportioned) | history only | USD/month |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows[:limit]:
        lines.append(
            f"| {name} | {human(row['live_bytes'])} | {human(row['unique_bytes'])} "
            f"| {human(row['shared_bytes'])} | {human(row['history_only_bytes'])} "
            f"| {row['monthly_usd']:.4f} |"
        )
    if limit is not None and len(rows) > limit:
        lines.append(f"| … {len(rows) - limit} more (in the JSON report) | | | | | |")
    return lines


def usage_markdown(doc: dict[str, Any]) -> str:
    """``regvault usage --format markdown``."""
    lines = [f"# regvault usage: `{doc['bucket']}` root `{doc['root'] or '(empty)'}`", ""]
    lines += usage_table_markdown(doc)
    return "\n".join([*lines, "", *[f"- {line}" for line in usage_lines(doc)], ""])


COLOURS = (("unique_bytes", "#1f6feb", "unique"), ("shared_bytes", "#8ab4f8", "shared (apportioned)"))
HISTORY = ("history_only_bytes", "#d0d7de", "history only (earlier images, noncurrent)")


def usage_svg(doc: dict[str, Any], limit: int = TOP) -> str:
    """Horizontal stacked bars per repository: unique + shared (what it costs now) and, after them, the
    bytes only its history keeps; the most expensive first."""
    rows = by_cost(doc)[:limit]
    if not rows:
        return "<p>No repositories.</p>"
    widest = max(r["unique_bytes"] + r["shared_bytes"] + r["history_only_bytes"] for _, r in rows) or 1
    label_w, plot_w, row_h = 260, 520, 22
    height = row_h * len(rows) + 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 120}" height="{height}" '
        'role="img" aria-label="storage per repository">'
    ]
    for i, (name, row) in enumerate(rows):
        y = 8 + i * row_h
        parts.append(f'<text x="0" y="{y + 12}" font-size="12">{escape(name)}</text>')
        x = float(label_w)
        for key, colour, label in (*COLOURS, HISTORY):
            width = plot_w * row[key] / widest
            if width > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{row_h - 6}" fill="{colour}">'
                    f"<title>{escape(f'{name}: {label} {human(row[key])}')}</title></rect>"
                )
                x += width
        cost = f"{human(row['unique_bytes'] + row['shared_bytes'])}, ${row['monthly_usd']:.2f}/mo"
        parts.append(
            f'<text x="{x + 6:.1f}" y="{y + 12}" font-size="11" fill="#57606a">{escape(cost)}</text>'
        )
    legend_y = height - 8
    x = label_w
    for _, colour, label in (*COLOURS, HISTORY):
        parts.append(f'<rect x="{x}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}" font-size="11">{escape(label)}</text>')
        x += 14 + 7 * len(label) + 16
    parts.append("</svg>")
    return "".join(parts)
