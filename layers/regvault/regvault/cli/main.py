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
from pathlib import Path
from typing import Any, TextIO

from regvault import __version__
from regvault.errors import InvalidInput, RegvaultError
from regvault.images.listing import Listing, list_registry, listing_document
from regvault.images.manifests import short_media_type
from regvault.storage.layout import RegistryLayout

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


HISTORY_EXAMPLES = """\
examples:
  regvault history team/app:1.4
  regvault history team/app --format json
"""

RESTORE_EXAMPLES = """\
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
    _common(parser, suppress=False, formats=("table", "json", "markdown", "html"))
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
    audit.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=os.environ.get("REGVAULT_CACHE_DIR") or None,
        help="keep what this audit learned from each manifest version in DIR and skip reading it next "
        "time (S3 versions never change); env REGVAULT_CACHE_DIR. Without it every manifest is read",
    )
    _common(audit, suppress=True, formats=("table", "json", "markdown", "html"))

    history = sub.add_parser(
        "history",
        help="every digest a tag pointed at, and whether S3 can still restore it",
        description="Every digest each tag pointed at, newest first, when, media type, total size, and "
        "whether the whole image (manifest, index children, config, layers, links) can still be restored "
        "from S3 versions; if not, which objects are gone for good.",
        epilog=HISTORY_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    history.add_argument("reference", metavar="REPO[:TAG]")
    _common(history, suppress=True, formats=("table", "json", "markdown"))

    restore = sub.add_parser(
        "restore",
        help="put a tag (or a whole repository) back the way it was",
        description="Plan, and with --apply carry out, a restore that copies old S3 object versions "
        "forward: blobs first, then links, the tag's current link last. Never deletes anything.",
        epilog=RESTORE_EXAMPLES,
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
    _common(restore, suppress=True)

    status = sub.add_parser(
        "status",
        help="bucket posture, whether the registry answers, and the last audit",
        description="A quick look: the bucket's versioning, recovery window and posture findings; "
        "whether the registry answers /v2/; the summary of the last scheduled audit.",
        epilog="example:\n  regvault status --registry-url https://registry.example:443 "
        "--reports-bucket regvault-reportsbucket-abc",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument(
        "--registry-url", metavar="URL", help="the registry's base URL, e.g. https://host:443"
    )
    status.add_argument(
        "--registry-ca", metavar="FILE", help="CA bundle for a self-signed registry certificate"
    )
    status.add_argument(
        "--reports-bucket", metavar="BUCKET", help="the stack's reports bucket (env REGVAULT_REPORTS_BUCKET)"
    )
    _common(status, suppress=True)

    setup = sub.add_parser(
        "setup",
        help="re-run the Setup state machine of a deployed stack, or check an instance before a first deploy",
        description="Start the stack's Setup state machine again with the input of its last run and "
        "wait for it: converges the bucket, secrets, IAM chain and profile, and relaunches the registry "
        "(re-running converges: the container is replaced, data is kept).\n\n"
        "--preflight runs only the setup's first step, read-only: the instance (exists in this region, "
        "running, Linux, its instance profile, metadata options, SSM agent), the bucket (region, "
        "versioning, encryption), the TLS secret's KMS key and the stack name. It reports every problem "
        "at once with its remedy (exit 1) — before `sam deploy`, give the deploy's values as flags; "
        "for a deployed stack, --state-machine-arn takes them from its last run.",
        epilog="examples:\n  regvault setup --state-machine-arn $(aws cloudformation describe-stacks "
        "--stack-name regvault --query \"Stacks[0].Outputs[?OutputKey=='SetupStateMachineArn'].OutputValue\" "
        "--output text)\n"
        "  regvault setup --preflight --stack-name regvault --instance-id i-0123456789abcdef0 "
        "--bucket my-registry-bucket --region eu-west-1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    setup.add_argument("--state-machine-arn", metavar="ARN", help="the stack's SetupStateMachineArn")
    setup.add_argument("--no-wait", dest="wait", action="store_false", help="start it and return")
    setup.add_argument(
        "--timeout", type=int, default=3600, metavar="S", help="how long to wait (default 3600)"
    )
    setup.add_argument("--poll", type=float, default=10.0, help=argparse.SUPPRESS)
    pre = setup.add_argument_group("preflight (read-only)")
    pre.add_argument("--preflight", action="store_true", help="only check; write nothing")
    pre.add_argument("--stack-name", metavar="NAME", help="the stack name you will deploy")
    pre.add_argument("--instance-id", metavar="ID", help="the registry's EC2 instance")
    pre.add_argument("--tls-secret-arn", metavar="ARN", default="", help="TlsSecretArn, if you give one")
    pre.add_argument(
        "--registry-image", metavar="IMAGE", default="", help="RegistryImage, if not the default"
    )
    pre.add_argument("--replace-existing-profile", action="store_true", help="ReplaceExistingProfile=true")
    pre.add_argument("--allow-reboot", action="store_true", help="AllowReboot=true")
    _common(setup, suppress=True)
    return parser


def _settings(args: argparse.Namespace) -> tuple[str, str]:
    bucket = args.bucket or os.environ.get("REGVAULT_BUCKET") or ""
    root = args.root if args.root is not None else os.environ.get("REGVAULT_ROOT", "")
    return bucket, root


def _store(args: argparse.Namespace) -> Any:
    from regvault.aws.clients import s3_client
    from regvault.aws.s3 import S3Store

    bucket, _ = _settings(args)
    client = s3_client(endpoint_url=args.endpoint_url or None, region=args.region, profile=args.profile)
    return S3Store(bucket, client)


def _console(out: TextIO) -> Any:
    """A terminal gets tables at its width; files and pipes get wide, unwrapped lines."""
    from rich.console import Console

    if out is sys.stdout and sys.stdout.isatty():
        return Console(file=out, emoji=False)
    return Console(file=out, width=200, emoji=False)


def cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    if not 1 <= args.page_size <= 1000:
        raise InvalidInput("--page-size must be between 1 and 1000")
    store = _store(args)
    bucket, root = _settings(args)
    layout = RegistryLayout(root)
    with StderrProgress() as bar:

        def progress(pages: int, versions: int) -> None:
            bar("listing object versions", versions, 0)

        listing = list_registry(
            store,
            layout,
            args.repository,
            page_size=args.page_size,
            progress=progress if bar.enabled else None,
        )
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

    from regvault.audit.run import AuditRequest, run_audit
    from regvault.reports.render import to_markdown

    store = _store(args)
    _, root = _settings(args)
    cache_file = _manifest_cache_file(args.cache_dir, store.bucket, root) if args.cache_dir else None
    cache = _load_manifest_cache(cache_file) if cache_file else None
    request = AuditRequest(
        deep=args.deep,
        sample=args.sample,
        grace=timedelta(hours=args.grace_hours),
        workers=args.workers,
        page_size=args.page_size,
        manifest_cache=cache,
    )
    with StderrProgress() as progress:
        report = run_audit(store, RegistryLayout(root), request, progress if progress.enabled else None)
    if cache_file and cache is not None:
        _save_manifest_cache(cache_file, cache)
    if args.format == "json":
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    elif args.format == "markdown":
        out.write(to_markdown(report))
    elif args.format == "html":
        from regvault.reports.render import to_html

        out.write(to_html(report))
    else:
        _audit_table(report, out)
    return report.exit_code


def _manifest_cache_file(directory: str, bucket: str, root: str) -> Path:
    import re

    name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{bucket}@{root}" if root else bucket)
    return Path(directory).expanduser() / f"{name}.manifests.json.gz"


def _load_manifest_cache(path: Path) -> Any:
    from regvault.images.manifest_cache import ManifestCache

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as exc:
        raise InvalidInput(f"cannot read the manifest cache {path}: {exc.strerror or exc}") from None
    cache = ManifestCache.loads(data)
    if cache.problem:
        print(f"warning: {path}: {cache.problem}", file=sys.stderr)
    return cache


def _save_manifest_cache(path: Path, cache: Any) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(cache.dumps())
        partial.replace(path)
    except OSError as exc:
        print(f"warning: could not write the manifest cache {path}: {exc.strerror or exc}", file=sys.stderr)


class StderrProgress:
    """A progress bar per phase on stderr, only when stderr is a terminal (never in machine output)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.progress: Any = None
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> StderrProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self.progress.start()
        return self

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total or None)
        self.progress.update(self.tasks[phase], completed=done, total=total or None)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _audit_table(report: Any, out: TextIO) -> None:
    from rich.markup import escape
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
                escape(f.message),
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


def _split_ref(text: str) -> tuple[str, str | None]:
    from regvault.storage.reference import Reference

    ref = Reference.parse(text)
    if ref.digest is not None:
        raise InvalidInput("name a tag (REPO:TAG) or a repository (REPO), not a digest reference")
    return ref.repository, ref.tag


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.restore.apply import tag_history

    repository, tag = _split_ref(args.reference)
    store = _store(args)
    _, root = _settings(args)
    doc = tag_history(store, RegistryLayout(root), repository, tag)
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0
    if args.format == "markdown":
        from regvault.reports.render import history_markdown

        out.write(history_markdown(doc))
        return 0
    console = _console(out)
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("REPOSITORY", "TAG", "", "DIGEST", "POINTED AT (UTC)", "TYPE", "SIZE", "RESTORABLE"):
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
            )
    console.print(table)
    console.print(
        f"{sum(len(t['history']) for t in doc['tags'])} image(s) in {len(doc['tags'])} tag(s); "
        f"{doc['s3_requests']} S3 requests"
    )
    return 0


def _size(n: int | None) -> str:
    if not n:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.restore.apply import apply_plan, parse_time, plan_restore

    repository, tag = _split_ref(args.reference)
    at = parse_time(args.at) if args.at is not None else None
    store = _store(args)
    _, root = _settings(args)
    layout = RegistryLayout(root)
    plan, _ = plan_restore(store, layout, repository, tag, to=args.to, previous=args.previous, at=at)
    doc = plan.as_dict(layout)
    applied = None
    if args.apply and plan.restorable:
        tty = sys.stderr.isatty()

        def progress(i: int, total: int, need: Any) -> None:
            if tty:
                sys.stderr.write(f"\r\033[Krestore: {i}/{total} {need.phase}")
                sys.stderr.flush()

        result = apply_plan(store, plan, force=args.force, progress=progress)
        if tty:
            sys.stderr.write("\r\033[K")
        applied = result.copied
    doc["applied"] = args.apply and plan.restorable
    doc["copied"] = applied or 0
    doc["s3_requests"] = store.requests.total
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        _plan_table(doc, out, args.apply)
    if not plan.restorable:
        names = ", ".join(m["key"] for m in doc["missing"][:3])
        print(
            f"regvault: not restorable: {len(doc['missing'])} object(s) have no version left: {names}",
            file=sys.stderr,
        )
        return 1
    return 0


def _plan_table(doc: dict[str, Any], out: TextIO, apply: bool) -> None:
    from rich.table import Table

    console = _console(out)
    for t in doc["targets"]:
        now = (t["current"] or "deleted")[:19]
        console.print(f"{t['repository']}:{t['tag']}  {now} -> [bold]{t['digest'][:19]}[/]  ({t['reason']})")
    for line in doc["skipped"]:
        console.print(f"[dim]skipped: {line}[/]")
    if doc["missing"]:
        console.print("[red]not restorable[/]: these objects have no version left:")
        for m in doc["missing"]:
            console.print(f"  {m['key']}  ({m['why']})")
        console.print("nothing was written")
        return
    if not doc["operations"]:
        console.print("nothing to do: every object is already in place")
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
    console.print(table)
    if apply:
        console.print(
            f"[green]restored[/]: {doc['copied']} object version(s) copied forward; nothing deleted"
        )
    else:
        console.print(
            f"plan only: {len(doc['operations'])} copy operation(s); run again with --apply to carry it out"
        )


def cmd_setup(args: argparse.Namespace, out: TextIO) -> int:
    import time
    from datetime import UTC, datetime

    from regvault.aws.clients import client
    from regvault.aws.services import StateMachine

    if not args.state_machine_arn and not args.preflight:
        raise InvalidInput("give --state-machine-arn (re-run the setup) or --preflight (check only)")
    machine = None
    if args.state_machine_arn:
        region = args.region or (
            args.state_machine_arn.split(":")[3] if args.state_machine_arn.count(":") > 3 else None
        )
        args.region = region
        machine = StateMachine(
            args.state_machine_arn,
            client(
                "stepfunctions", region=region, endpoint_url=args.endpoint_url or None, profile=args.profile
            ),
        )
    if args.preflight:
        return _preflight(args, machine.last_input()["config"] if machine else None, out)
    assert machine is not None
    document = machine.last_input()
    document["request"] = {}  # no custom resource to answer: this run is the CLI's
    name = f"cli-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    execution = machine.start(name, document)
    print(f"regvault: setup started: {execution}", file=sys.stderr)
    deadline = time.monotonic() + args.timeout
    while True:
        status = machine.status(execution)
        if status["status"] != "RUNNING" or not args.wait:
            break
        if time.monotonic() > deadline:
            print(f"regvault: setup still running after {args.timeout} s: {execution}", file=sys.stderr)
            return 1
        time.sleep(args.poll)
    result = {
        "execution": execution,
        "status": status["status"],
        "error": status.get("error"),
        "cause": status.get("cause"),
    }
    if args.format == "json":
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        out.write(f"setup {status['status'].lower()}: {execution}\n")
    return 0 if status["status"] in ("SUCCEEDED", "RUNNING") else 1


def _preflight(args: argparse.Namespace, properties: dict[str, Any] | None, out: TextIO) -> int:
    """`regvault setup --preflight`: the Setup state machine's first step, run here with your credentials."""
    from regvault.aws.clients import client
    from regvault.setup.preflight import run
    from regvault.setup.steps import SetupConfig

    def make(service: str) -> Any:
        return client(
            service, region=args.region, endpoint_url=args.endpoint_url or None, profile=args.profile
        )

    ec2 = make("ec2")
    if properties is None:
        bucket, _ = _settings(args)
        missing = [
            f
            for f, v in (
                ("--stack-name", args.stack_name),
                ("--instance-id", args.instance_id),
                ("--bucket", bucket),
            )
            if not v
        ]
        if missing:
            raise InvalidInput(f"--preflight before a deploy needs {', '.join(missing)}")
        properties = {
            "Name": args.stack_name,
            "Region": ec2.meta.region_name,
            "InstanceId": args.instance_id,
            "BucketName": bucket,
            "TlsSecretArn": args.tls_secret_arn,
            "RegistryImage": args.registry_image,
            "ReplaceExistingProfile": str(args.replace_existing_profile).lower(),
            "AllowReboot": str(args.allow_reboot).lower(),
        }
    config = SetupConfig.from_properties(properties)
    report = run(config, ec2, make("ssm"), make("s3"), make("secretsmanager"))
    if args.format == "json":
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        for problem in report.problems:
            out.write(f"PROBLEM  {problem}\n")
        for note in report.notes:
            out.write(f"note     {note}\n")
        out.write(
            f"preflight: {len(report.problems)} problem(s)"
            + (" — fix them, then deploy\n" if report.problems else "; ready to deploy\n")
        )
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.aws.clients import s3_client
    from regvault.aws.s3 import S3Store
    from regvault.reports.status import gather

    store = _store(args)
    _, root = _settings(args)
    reports_bucket = args.reports_bucket or os.environ.get("REGVAULT_REPORTS_BUCKET")
    reports = None
    if reports_bucket:
        reports = S3Store(reports_bucket, s3_client(args.endpoint_url or None, args.region, args.profile))
    store.check_bucket()
    doc = gather(store, RegistryLayout(root), args.registry_url, args.registry_ca, reports)
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0 if doc["ok"] else 1
    console = _console(out)
    p = doc["posture"]
    window = (
        f"{p['recovery_window_days']} days"
        if p["recovery_window_days"] is not None
        else "versions never expire"
    )
    console.print(
        f"bucket     {doc['bucket']} (root {doc['root'] or '(empty)'}): versioning {p['versioning']}, "
        f"recovery window {window}"
    )
    for f in p["findings"]:
        console.print(
            f"           [{'red' if f['severity'] == 'error' else 'yellow'}]{f['code']}[/]: {f['message']}"
        )
    reg = doc["registry"]
    if reg is None:
        console.print("registry   not checked (--registry-url)")
    elif reg["reachable"]:
        console.print(
            f"registry   [green]answers[/] at {reg['url']} (HTTP {reg['http_status']}, auth {reg['auth']})"
        )
    else:
        console.print(
            f"registry   [red]unreachable[/] at {reg['url']}: {reg.get('detail') or reg.get('http_status')}"
        )
    audit = doc["last_audit"]
    if audit is None:
        console.print("last audit not checked (--reports-bucket / REGVAULT_REPORTS_BUCKET)")
    elif audit.get("missing"):
        console.print(f"last audit none yet ({audit['report']})")
    else:
        s = audit["summary"]
        console.print(
            f"last audit {audit['finished_at'][:19]}: {s['errors']} error(s), {s['warnings']} warning(s), "
            f"{s['tags']} tags — {audit['report']}"
        )
    return 0 if doc["ok"] else 1


COMMANDS = {
    "status": cmd_status,
    "ls": cmd_ls,
    "audit": cmd_audit,
    "history": cmd_history,
    "restore": cmd_restore,
    "setup": cmd_setup,
}


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
