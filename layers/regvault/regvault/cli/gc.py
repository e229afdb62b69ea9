"""``regvault gc``: garbage collection that cannot lose an image — plan, apply, undo."""

from __future__ import annotations

import argparse
import json
from datetime import timedelta
from typing import Any, TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, store
from regvault.storage.layout import RegistryLayout

EXAMPLES = """\
examples:
  regvault gc                                  what would be swept (blobs no manifest needs); writes nothing
  regvault gc --delete-untagged                also untagged manifests (never an index's children or a
                                               kept image's referrers), with their links
  regvault gc --delete-untagged --apply        sweep: delete markers only; prints the run id
  regvault gc --undo gc-20261130T074500Z-1a2b3c            what the undo would copy back
  regvault gc --undo gc-20261130T074500Z-1a2b3c --apply    copy every swept version back
  regvault gc --break-lease                    remove a lease left by a run that died (after checking it)
"""


def add_parser(sub: Subparsers) -> None:
    gc = sub.add_parser(
        "gc",
        help="garbage-collect online, reversibly: delete markers only, undo by run id",
        description="Mark every tag's closure (index children recursively, OCI referrers of kept "
        "manifests, anything written within the grace window) and sweep the rest with delete markers "
        "only, so every byte stays restorable for the bucket's recovery window. The registry keeps "
        "serving: after the sweep the bucket is marked again and anything a push written meanwhile "
        "needs is copied back. Without --apply it prints the plan and writes nothing.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gc.add_argument(
        "--delete-untagged",
        action="store_true",
        help="also sweep manifests no tag reaches (and their revision links and tag index entries)",
    )
    gc.add_argument(
        "--grace-hours",
        type=float,
        default=2.0,
        metavar="H",
        help="keep anything written within H hours: a push in flight is not garbage (default 2)",
    )
    gc.add_argument("--workers", type=int, default=8, metavar="N", help="parallel manifest reads (default 8)")
    gc.add_argument(
        "--undo", metavar="RUN_ID", help="copy back what run RUN_ID swept (a plan without --apply)"
    )
    gc.add_argument("--break-lease", action="store_true", help="remove an expired lease a dead run left")
    gc.add_argument("--apply", action="store_true", help="carry the sweep (or the undo) out")
    add_common_options(gc, suppress=True, formats=("table", "json"))


def cmd_gc(args: argparse.Namespace, out: TextIO) -> int:
    from datetime import UTC, datetime

    from regvault.errors import InvalidInput
    from regvault.garbage.usecase import GcRequest, collect_garbage, undo_garbage
    from regvault.storage.lease import break_stale

    if args.grace_hours < 0:
        raise InvalidInput("--grace-hours cannot be negative")
    s3 = store(args)
    _, root = settings(args)
    layout = RegistryLayout(root)
    if args.break_lease:
        removed = break_stale(s3, layout, datetime.now(UTC))
        out.write(
            f"removed the lease of {removed.operation} run {removed.holder}\n" if removed else "no lease\n"
        )
        return 0
    if args.undo:
        doc = undo_garbage(s3, layout, args.undo, apply=args.apply)
        if args.format == "json":
            out.write(json.dumps(doc, indent=2) + "\n")
        else:
            _undo_table(doc, out)
        return 0
    request = GcRequest(
        delete_untagged=args.delete_untagged,
        grace=timedelta(hours=args.grace_hours),
        workers=args.workers,
        page_size=args.page_size,
    )
    result = collect_garbage(s3, layout, request, apply=args.apply)
    doc = result.as_dict()
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        _table(doc, out)
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _table(doc: dict[str, Any], out: TextIO) -> None:
    from rich.table import Table

    terminal = console(out)
    s = doc["summary"]
    if not doc["objects"]:
        terminal.print(
            f"nothing to sweep: {s['kept_manifests']} manifests and {s['kept_blobs']} blobs are kept"
        )
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("REPOSITORY", "OBJECTS", "BYTES"):
        table.add_column(column, no_wrap=True)
    for name, row in doc["repositories"].items():
        table.add_row(name, str(row["objects"]), _size(row["bytes"]))
    terminal.print(table)
    what = (
        f"{s['blobs']} blob(s), {s['manifests']} manifest(s), {s['links']} link(s), {_size(s['bytes'])}; "
        f"kept {s['kept_manifests']} manifests and {s['kept_blobs']} blobs"
    )
    if doc["applied"]:
        back = (
            f"; {len(doc['resurrected'])} copied back for writes made meanwhile" if doc["resurrected"] else ""
        )
        terminal.print(f"[green]swept[/] {what}{back}")
        terminal.print(
            f"run id [bold]{doc['run_id']}[/]: undo with `regvault gc --undo {doc['run_id']} --apply`"
        )
    else:
        terminal.print(
            f"plan only: would sweep {what}; run again with --apply (delete markers only, undoable)"
        )


def _undo_table(doc: dict[str, Any], out: TextIO) -> None:
    terminal = console(out)
    s = doc["summary"]
    if doc["applied"]:
        terminal.print(
            f"[green]undone[/]: {len(doc['restored'])} object version(s) copied back; nothing deleted"
        )
    else:
        terminal.print(
            f"undo plan for {doc['run_id']}: {s['restore']} to copy back, {s['restored']} already back, "
            f"{s['changed']} written since (left alone); run again with --apply"
        )
