"""``regvault history``: every digest a tag pointed at, and whether S3 can still restore it."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, split_ref, store
from regvault.images.manifests import short_media_type
from regvault.storage.layout import RegistryLayout

EXAMPLES = """\
examples:
  regvault history team/app:1.4
  regvault history team/app --format json
"""


def add_parser(sub: Subparsers) -> None:
    history = sub.add_parser(
        "history",
        help="every digest a tag pointed at, and whether S3 can still restore it",
        description="Every digest each tag pointed at, newest first, when, media type, total size, and "
        "whether the whole image (manifest, index children, config, layers, links) can still be restored "
        "from S3 versions; if not, which objects are gone for good.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    history.add_argument("reference", metavar="REPO[:TAG]")
    history.add_argument(
        "--reports-bucket",
        metavar="BUCKET",
        default=os.environ.get("REGVAULT_REPORTS_BUCKET") or None,
        help="the stack's reports bucket (env REGVAULT_REPORTS_BUCKET): say who pushed each digest, "
        "from the push journal the registry's notifications fill",
    )
    add_common_options(history, suppress=True, formats=("table", "json", "markdown"))


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.restore.history import tag_history

    repository, tag = split_ref(args.reference)
    s3 = store(args)
    _, root = settings(args)
    journal = None
    if args.reports_bucket:
        from regvault.journal.record import Journal, read_journal

        journal = Journal(read_journal(store(args, args.reports_bucket), s3.bucket, root))
    doc = tag_history(s3, RegistryLayout(root), repository, tag, journal)
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0
    if args.format == "markdown":
        from regvault.reports.render import history_markdown

        out.write(history_markdown(doc))
        return 0
    _table(doc, out)
    return 0


def _table(doc: dict[str, Any], out: TextIO) -> None:
    from rich.table import Table

    terminal = console(out)
    table = Table(box=None, header_style="bold", pad_edge=False)
    journaled = any(e.get("by") for t in doc["tags"] for e in t["history"])
    columns = ["REPOSITORY", "TAG", "", "DIGEST", "POINTED AT (UTC)", "TYPE", "SIZE", "RESTORABLE"]
    for column in columns + (["BY"] if journaled else []):
        table.add_column(column, no_wrap=True)
    for t in doc["tags"]:
        for entry in t["history"]:
            marker = (
                "current"
                if entry["current"]
                else ("deleted" if t["state"] == "deleted" and entry is t["history"][0] else "")
            )
            restorable = (
                "yes" if entry["recoverable"] else f"NO: {len(entry['missing'])} gone ({entry['missing'][0]})"
            )
            table.add_row(
                t["repository"],
                t["tag"],
                marker,
                entry["digest"][:19],
                (entry["at"] or "?")[:19].replace("T", " "),
                short_media_type(entry["media_type"]),
                _size(entry["size"]),
                restorable,
                *([entry.get("by") or "?"] if journaled else []),
            )
    terminal.print(table)
    terminal.print(
        f"{sum(len(t['history']) for t in doc['tags'])} image(s) in {len(doc['tags'])} tag(s); "
        f"{doc['s3_requests']} S3 requests"
    )


def _size(n: int | None) -> str:
    if not n:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)
