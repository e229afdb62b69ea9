"""``regvault restore``: put a tag (or a whole repository) back the way it was."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, split_ref, store
from regvault.storage.layout import RegistryLayout

if TYPE_CHECKING:
    from regvault.images.closure import Need

EXAMPLES = """\
examples:
  regvault restore team/app:1.4 --previous                 # plan only: what would be copied
  regvault restore team/app:1.4 --previous --apply
  regvault restore team/app:1.4 --to sha256:4f1c… --apply
  regvault restore team/app:1.4 --at 2026-11-20T10:00:00Z --apply
  regvault restore team/app --at 2026-11-20T10:00:00+01:00 --apply   # every tag of the repository

exit codes: 0 done or plannable, 1 not restorable (the missing objects are named) or the tag moved
meanwhile, 2 bad input. After blobs come back, restart a registry that runs the in-memory blob
descriptor cache (see README).
"""


def add_parser(sub: Subparsers) -> None:
    restore = sub.add_parser(
        "restore",
        help="put a tag (or a whole repository) back the way it was",
        description="Plan, and with --apply carry out, a restore that copies old S3 object versions "
        "forward: blobs first, then links, the tag's current link last. Never deletes anything.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    restore.add_argument("reference", metavar="REPO:TAG | REPO")
    which = restore.add_mutually_exclusive_group(required=True)
    which.add_argument("--to", metavar="DIGEST", help="restore the tag to this manifest digest")
    which.add_argument(
        "--previous", type=int, nargs="?", const=1, metavar="N", help="the Nth earlier digest (default 1)"
    )
    which.add_argument(
        "--at", metavar="TIME", help="as it was at this ISO-8601 time with offset (…Z, +02:00)"
    )
    restore.add_argument("--apply", action="store_true", help="carry the plan out (default: print it only)")
    restore.add_argument("--force", action="store_true", help="move the tag even if someone pushed meanwhile")
    add_common_options(restore, suppress=True)


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.restore.targets import parse_time
    from regvault.restore.usecase import RestoreRequest, restore_images

    repository, tag = split_ref(args.reference)
    at = parse_time(args.at) if args.at is not None else None
    s3 = store(args)
    _, root = settings(args)
    request = RestoreRequest(
        repository, tag, to=args.to, previous=args.previous, at=at, apply=args.apply, force=args.force
    )
    tty = sys.stderr.isatty()

    def progress(i: int, total: int, need: Need) -> None:
        if tty:
            sys.stderr.write(f"\r\033[Krestore: {i}/{total} {need.phase}")
            sys.stderr.flush()

    outcome = restore_images(s3, RegistryLayout(root), request, progress=progress)
    if outcome.applied and tty:
        sys.stderr.write("\r\033[K")
    doc = outcome.document
    doc["applied"] = outcome.applied
    doc["copied"] = outcome.copied
    doc["s3_requests"] = s3.requests.total
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        _table(doc, out, args.apply)
    if not outcome.plan.restorable:
        names = ", ".join(m["key"] for m in doc["missing"][:3])
        print(
            f"regvault: not restorable: {len(doc['missing'])} object(s) have no version left: {names}",
            file=sys.stderr,
        )
        return 1
    return 0


def _table(doc: dict[str, Any], out: TextIO, apply: bool) -> None:
    from rich.table import Table

    terminal = console(out)
    for t in doc["targets"]:
        now = (t["current"] or "deleted")[:19]
        terminal.print(f"{t['repository']}:{t['tag']}  {now} -> [bold]{t['digest'][:19]}[/]  ({t['reason']})")
    for line in doc["skipped"]:
        terminal.print(f"[dim]skipped: {line}[/]")
    if doc["missing"]:
        terminal.print("[red]not restorable[/]: these objects have no version left:")
        for m in doc["missing"]:
            terminal.print(f"  {m['key']}  ({m['why']})")
        terminal.print("nothing was written")
        return
    if not doc["operations"]:
        terminal.print("nothing to do: every object is already in place")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("#", "PHASE", "COPY ONTO", "FROM VERSION", "OF", "WRITTEN (UTC)"):
        table.add_column(column, no_wrap=True)
    for i, op in enumerate(doc["operations"], 1):
        source = "same key" if op["source_key"] == op["key"] else op["source_key"]
        table.add_row(
            str(i),
            op["phase"],
            op["key"],
            op["source_version"][:20],
            source,
            (op["source_time"] or "")[:19].replace("T", " "),
        )
    terminal.print(table)
    if apply:
        terminal.print(
            f"[green]restored[/]: {doc['copied']} object version(s) copied forward; nothing deleted"
        )
    else:
        terminal.print(
            f"plan only: {len(doc['operations'])} copy operation(s); run again with --apply to carry it out"
        )
