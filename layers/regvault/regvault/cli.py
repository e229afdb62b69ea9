"""The ``regvault`` command line.

Common flags work before or after the command, like the AWS CLI:
``regvault ls --format json --bucket B --endpoint-url URL``. Machine formats go to stdout alone;
progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from . import __version__
from .catalog import Listing, list_registry, listing_document
from .errors import RegvaultError
from .layout import RegistryLayout
from .manifests import short_media_type

EPILOG = """\
environment:
  REGVAULT_BUCKET       default for --bucket
  REGVAULT_ROOT         default for --root
  AWS_ENDPOINT_URL      default for --endpoint-url (e.g. the local emulator)
  AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ... as for the AWS CLI

exit codes: 0 done, 1 problems found, 2 could not run (bad input, no access, no registry)
"""

LS_EXAMPLES = """\
examples:
  regvault ls --bucket my-registry-bucket
  regvault ls team/app --format json --output tags.json
  regvault ls --bucket B --endpoint-url http://127.0.0.1:5000   # local emulator

Tags and repositories deleted from the registry still show (state 'deleted') while S3 keeps their
versions; EARLIER counts the other digests the tag pointed at that S3 still records.
"""


AUDIT_EXAMPLES = """\
examples:
  regvault audit --bucket my-registry-bucket
  regvault audit --format json --output report.json      # exit 1 when errors are found
  regvault audit --deep --sample 0.1                     # also hash 10 % of the blobs

exit codes: 0 no error-severity finding, 1 errors found, 2 could not run.
Severities: error = a pull of a live tag breaks or data is lost now; warning = risk (bucket posture,
deleted tags, history that can no longer be restored); info = housekeeping (orphans, stale uploads).
"""


def _common(
    parser: argparse.ArgumentParser, *, suppress: bool, formats: tuple[str, ...] = ("table", "json")
) -> None:
    """Add the common flags. On subcommands their default is SUPPRESS so that a value given before
    the command is not overwritten by the subcommand's default."""

    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    g = parser.add_argument_group("common options")
    g.add_argument("--bucket", default=d(None), help="registry bucket (env REGVAULT_BUCKET)")
    g.add_argument(
        "--root",
        default=d(None),
        help="the storage driver's rootdirectory, with or without a leading '/' "
        "(env REGVAULT_ROOT; default empty)",
    )
    g.add_argument("--endpoint-url", default=d(None), help="S3 endpoint (env AWS_ENDPOINT_URL)")
    g.add_argument("--region", default=d(None), help="AWS region (env AWS_REGION)")
    g.add_argument("--profile", default=d(None), help="AWS profile (env AWS_PROFILE)")
    g.add_argument("--format", choices=formats, default=d("table"), help="output format (default table)")
    g.add_argument("--output", metavar="FILE", default=d(None), help="write the output to FILE")
    g.add_argument(
        "--page-size", type=int, default=d(1000), metavar="N", help="keys per list request (1-1000)"
    )
    g.add_argument("--debug", action="store_true", default=d(False), help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regvault",
        description="Audit, browse and restore a Docker registry's S3 storage, object versions included.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"regvault {__version__}")
    _common(parser, suppress=False, formats=("table", "json", "markdown"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ls = sub.add_parser(
        "ls",
        help="repositories and tags as S3 holds them, deleted ones included",
        description="List repositories and tags with their current digest, media type, when the "
        "tag was written and how many earlier digests its history holds.",
        epilog=LS_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("repository", nargs="?", metavar="REPO", help="only this repository (e.g. team/app)")
    _common(ls, suppress=True)

    audit = sub.add_parser(
        "audit",
        help="check every tag's closure, its history and the bucket's posture",
        description="Walk the registry's object versions once and check that every live tag can be "
        "pulled (manifest, index children, config, layers, links, digests, sizes), which earlier images "
        "S3 can still restore, housekeeping (orphan blobs, stale uploads) and the bucket's posture.",
        epilog=AUDIT_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audit.add_argument("--deep", action="store_true", help="also stream every referenced blob through sha256")
    audit.add_argument(
        "--sample",
        type=float,
        default=1.0,
        metavar="FRACTION",
        help="with --deep: verify this fraction of blobs",
    )
    audit.add_argument(
        "--grace-hours",
        type=float,
        default=2.0,
        metavar="H",
        help="uploads and unreferenced blobs younger than this are in-flight pushes, "
        "not findings (default 2)",
    )
    audit.add_argument("--workers", type=int, default=8, metavar="N", help="parallel S3 reads (default 8)")
    _common(audit, suppress=True, formats=("table", "json", "markdown"))
    return parser


def _settings(args: argparse.Namespace) -> tuple[str, str]:
    bucket = args.bucket or os.environ.get("REGVAULT_BUCKET") or ""
    root = args.root if args.root is not None else os.environ.get("REGVAULT_ROOT", "")
    return bucket, root


def _store(args: argparse.Namespace) -> Any:
    from .aws import S3Store, s3_client

    bucket, _ = _settings(args)
    client = s3_client(endpoint_url=args.endpoint_url or None, region=args.region, profile=args.profile)
    return S3Store(bucket, client)


def _progress(label: str) -> Any:
    """A progress callback that updates one line on stderr when it is a terminal."""
    if not sys.stderr.isatty():
        return None

    def update(pages: int, versions: int) -> None:
        sys.stderr.write(f"\r{label}: {versions:,} object versions ({pages} list requests)")
        sys.stderr.flush()

    return update


def _console(out: TextIO) -> Any:
    """A terminal gets tables at its width; files and pipes get wide, unwrapped lines."""
    from rich.console import Console

    if out is sys.stdout and sys.stdout.isatty():
        return Console(file=out)
    return Console(file=out, width=200)


def cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    from .errors import InvalidInput

    if not 1 <= args.page_size <= 1000:
        raise InvalidInput("--page-size must be between 1 and 1000")
    store = _store(args)
    bucket, root = _settings(args)
    layout = RegistryLayout(root)
    progress = _progress("listing")
    listing = list_registry(store, layout, args.repository, page_size=args.page_size, progress=progress)
    if progress:
        sys.stderr.write("\n")
    doc = listing_document(listing, bucket, layout, store.requests.total)
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        _ls_table(listing, doc["summary"], out)
    return 0


def _ls_table(listing: Listing, s: dict[str, int], out: TextIO) -> None:
    from rich.table import Table

    console = _console(out)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("REPOSITORY", "TAG", "DIGEST", "TYPE", "WRITTEN (UTC)", "EARLIER", "STATE"):
        table.add_column(column, no_wrap=True)
    for repo in listing.repositories:
        if not repo.tags:
            table.add_row(repo.name, "-", "-", "-", "-", "-", "deleted" if repo.deleted else "live")
        for tag in repo.tags:
            state = "deleted" if tag.deleted else "live"
            if repo.deleted:
                state = "deleted (repository)"
            if tag.problem:
                state += f" ! {tag.problem}"
            table.add_row(
                repo.name,
                tag.tag,
                tag.digest.short if tag.digest else "?",
                short_media_type(tag.media_type) if not tag.deleted else "-",
                tag.written_at.strftime("%Y-%m-%d %H:%M:%S") if tag.written_at else "-",
                str(tag.earlier_digests),
                state,
                style="dim" if tag.deleted or repo.deleted else None,
            )
    console.print(table)
    console.print(
        f"{s['repositories']} repositories, {s['tags']} tags; {s['object_versions']:,} object "
        f"versions ({s['delete_markers']:,} delete markers) read with {s['s3_requests']} S3 requests"
    )


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    from datetime import timedelta

    from .audit import AuditRequest, run_audit
    from .report import to_markdown

    request = AuditRequest(
        deep=args.deep,
        sample=args.sample,
        grace=timedelta(hours=args.grace_hours),
        workers=args.workers,
        page_size=args.page_size,
    )
    store = _store(args)
    _, root = _settings(args)
    progress = _audit_progress()
    report = run_audit(store, RegistryLayout(root), request, progress)
    if progress:
        sys.stderr.write("\r\033[K")
    if args.format == "json":
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    elif args.format == "markdown":
        out.write(to_markdown(report))
    else:
        _audit_table(report, out)
    return report.exit_code


def _audit_progress() -> Any:
    if not sys.stderr.isatty():
        return None

    def update(phase: str, done: int, total: int) -> None:
        of = f"/{total:,}" if total else ""
        sys.stderr.write(f"\r\033[Kaudit: {phase} {done:,}{of}")
        sys.stderr.flush()

    return update


def _audit_table(report: Any, out: TextIO) -> None:
    from rich.table import Table

    console = _console(out)
    s = report.summary
    colour = {"error": "red", "warning": "yellow", "info": "cyan"}
    if report.findings:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("SEVERITY", "CODE", "REPOSITORY", "TAG", "DIGEST", "RECOVERABLE", "MESSAGE"):
            table.add_column(
                column, no_wrap=column != "MESSAGE", min_width=40 if column == "MESSAGE" else None
            )
        for f in report.findings:
            table.add_row(
                f"[{colour[f.severity]}]{f.severity}[/]",
                f.code,
                f.repository or "",
                f.tag or "",
                (f.digest or "")[:19],
                {True: "yes", False: "NO", None: "-"}[f.recoverable],
                f.message,
            )
        console.print(table)
    else:
        console.print("[green]no findings[/]")
    verdict = "[green]clean[/]" if not s["errors"] else f"[red]{s['errors']} error(s)[/]"
    console.print(
        f"audit {verdict}: {s['warnings']} warning(s), {s['infos']} info; {s['repositories']} repositories, "
        f"{s['tags']} tags ({s['deleted_tags']} deleted), {s['manifests']} manifests, {s['blobs']} blobs; "
        f"{s['object_versions']:,} object versions read with {s['s3_requests']} S3 requests "
        f"in {s['duration_s']:.1f} s"
    )


COMMANDS = {"ls": cmd_ls, "audit": cmd_audit}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    out: TextIO = sys.stdout
    handle = None
    try:
        if args.output:
            handle = open(args.output, "w", encoding="utf-8")  # noqa: SIM115
            out = handle
        return COMMANDS[args.command](args, out)
    except RegvaultError as exc:
        print(f"regvault: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("regvault: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line, never a traceback, unless --debug
        if args.debug:
            raise
        print(
            f"regvault: internal error: {type(exc).__name__}: {exc} (run again with --debug for details)",
            file=sys.stderr,
        )
        return 2
    finally:
        if handle is not None:
            handle.close()


def run() -> None:
    sys.exit(main())
