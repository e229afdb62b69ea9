"""``regvault repair``: every broken image that S3 versions can repair, in one plan."""

from __future__ import annotations

import argparse
import json
import os
from typing import TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, split_ref, store
from regvault.storage.layout import RegistryLayout

EXAMPLES = """\
examples:
  regvault repair                          plan: every live tag whose image is broken and recoverable
  regvault repair --apply                  repair them in place (copy forward what is missing)
  regvault repair team/app:1.1 --apply     one tag
  regvault repair team/app --include-deleted --apply
                                           also bring the repository's deleted tags back as they last were

exit codes: 0 nothing left that cannot be repaired, 1 some image cannot be repaired from S3 versions
(listed, skipped; the rest is still repaired with --apply), 2 bad input. After blobs come back, restart
a registry that runs the in-memory blob descriptor cache (see README).
"""


def add_parser(sub: Subparsers) -> None:
    repair = sub.add_parser(
        "repair",
        help="repair every broken image S3 versions can repair, in one plan",
        description="Audit the registry, then plan an in-place restore of every live tag whose image is "
        "broken and recoverable: only what is missing is copied forward from an earlier S3 version "
        "(blobs first, links next, tags last), under the writers' lease. Without --apply it prints the "
        "plan and writes nothing; running it again finishes an interrupted repair.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    repair.add_argument("reference", nargs="?", metavar="REPO[:TAG]", help="only this repository or tag")
    repair.add_argument(
        "--include-deleted", action="store_true", help="also bring deleted tags back at their last digest"
    )
    repair.add_argument("--apply", action="store_true", help="carry the repair out (default: plan only)")
    repair.add_argument("--workers", type=int, default=8, metavar="N", help="parallel reads (default 8)")
    repair.add_argument(
        "--protected-tags",
        metavar="PATTERNS",
        default=os.environ.get("REGVAULT_PROTECTED_TAGS", ""),
        help="the stack's ProtectedTags (env REGVAULT_PROTECTED_TAGS): also put back protected tags "
        "that moved off the digest the guard pinned",
    )
    add_common_options(repair, suppress=True, formats=("table", "json"))


def cmd_repair(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.errors import InvalidInput
    from regvault.repair.usecase import RepairRequest, repair_registry

    if not 1 <= args.workers <= 64:
        raise InvalidInput("--workers must be between 1 and 64")
    repository, tag = split_ref(args.reference) if args.reference else (None, None)
    request = RepairRequest(
        repository,
        tag,
        include_deleted=args.include_deleted,
        apply=args.apply,
        workers=args.workers,
        protected_tags=args.protected_tags,
    )
    s3 = store(args)
    _, root = settings(args)
    outcome = repair_registry(s3, RegistryLayout(root), request)
    if args.format == "json":
        out.write(json.dumps(outcome.as_dict(), indent=2) + "\n")
        return outcome.exit_code
    from rich.markup import escape

    terminal = console(out)
    if not outcome.items:
        terminal.print("[green]nothing to repair[/]: no live image in scope is broken")
    for item in outcome.items:
        g = item.group
        what = {"planned": "[yellow]would repair[/]", "repaired": "[green]repaired[/]"}.get(
            item.status, "[red]cannot repair[/]"
        )
        action = "bring back" if g.state == "deleted" else "in place"
        detail = (
            f"{item.operations} object version(s) to copy" if item.status != "unrecoverable" else item.why
        )
        if item.status == "repaired":
            detail = f"{item.operations} object version(s) planned"
        terminal.print(
            f"{what} {escape(g.repository)}:{escape(g.tag)} -> {(g.digest or '?')[:19]} ({action}): "
            f"{escape(detail)}"
        )
    for line in outcome.other_errors:
        terminal.print(f"[dim]not an image's closure, not repaired here: {escape(line)}[/]")
    d = outcome.as_dict()["summary"]
    if outcome.applied:
        terminal.print(f"repair applied: {outcome.copied} object version(s) copied forward, nothing deleted")
    elif outcome.plan is not None:
        terminal.print(
            f"plan: {d['operations']} object version(s) to copy forward for {d['repairable']} image(s); "
            "nothing written (add --apply)"
        )
    return outcome.exit_code
