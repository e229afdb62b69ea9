"""``regvault audit``: every tag's closure, its history and the bucket's posture."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, store
from regvault.cli.progress import StderrProgress
from regvault.errors import InvalidInput
from regvault.storage.layout import RegistryLayout

if TYPE_CHECKING:  # the audit's modules load when an audit runs, not for every command
    from regvault.audit.findings import AuditReport
    from regvault.images.manifest_cache import ManifestCache

EXAMPLES = """\
examples:
  regvault audit --bucket my-registry-bucket
  regvault audit --format json --output report.json      # exit 1 when errors are found
  regvault audit --deep --sample 0.1                     # also hash 10 % of the blobs
  regvault audit --shards 16 --workers 16                # list a large bucket in parallel

exit codes: 0 no error-severity finding, 1 errors found, 2 could not run.
Severities: error = a pull of a live tag breaks or data is lost now; warning = risk (bucket posture,
deleted tags, history that can no longer be restored); info = housekeeping (orphans, stale uploads).
"""


def add_parser(sub: Subparsers) -> None:
    audit = sub.add_parser(
        "audit",
        help="check every tag's closure, its history and the bucket's posture",
        description="Walk the registry's object versions once and check that every live tag can be "
        "pulled (manifest, index children, config, layers, links, digests, sizes), which earlier images "
        "S3 can still restore, housekeeping (orphan blobs, stale uploads) and the bucket's posture.",
        epilog=EXAMPLES,
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
        "--shards",
        type=int,
        choices=(1, 16, 256),
        default=1,
        metavar="N",
        help="list the bucket's versions as key ranges read in parallel by --workers: N=16 or 256 splits "
        "blobs by leading hex digits (repositories by first character); the same report as one walk "
        "(1, the default), a few dozen more list requests, much less wall time on a large bucket",
    )
    audit.add_argument(
        "--upload-versions",
        action="store_true",
        help="also list every version of the repositories' upload scratch (_uploads/: about three "
        "quarters of a registry's versions, written and delete-marked by every push). By default a "
        "folder whose versions run past a listing page is read current-only (its live keys, which "
        "are all the stale-upload check needs) and the report says how many were not listed",
    )
    audit.add_argument(
        "--protected-tags",
        metavar="PATTERNS",
        default=os.environ.get("REGVAULT_PROTECTED_TAGS", ""),
        help="the stack's ProtectedTags (REPO_GLOB:TAG_GLOB,…; env REGVAULT_PROTECTED_TAGS): report "
        "protected tags that no longer point at the digest the guard pinned (PROTECTED_TAG_MOVED)",
    )
    audit.add_argument(
        "--reports-bucket",
        metavar="BUCKET",
        default=os.environ.get("REGVAULT_REPORTS_BUCKET") or None,
        help="the stack's reports bucket (env REGVAULT_REPORTS_BUCKET): with its push journal, report "
        "tag writes no registry push or delete explains (TAG_WRITTEN_OUTSIDE_REGISTRY)",
    )
    audit.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=os.environ.get("REGVAULT_CACHE_DIR") or None,
        help="keep what this audit learned from each manifest version in DIR and skip reading it next "
        "time (S3 versions never change); env REGVAULT_CACHE_DIR. Without it every manifest is read",
    )
    add_common_options(audit, suppress=True, formats=("table", "json", "markdown", "html"))


def cmd_audit(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.audit.run import AuditRequest
    from regvault.audit.usecase import audit_registry
    from regvault.reports.render import to_markdown

    s3 = store(args)
    _, root = settings(args)
    cache = FileManifestCache.of(args.cache_dir, s3.bucket, root) if args.cache_dir else None
    request = AuditRequest(
        deep=args.deep,
        sample=args.sample,
        grace=timedelta(hours=args.grace_hours),
        workers=args.workers,
        page_size=args.page_size,
        shards=args.shards,
        upload_versions=args.upload_versions,
        protected_tags=args.protected_tags,
        journal=_journal(args, s3.bucket, root),
        price_region=args.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
        price_gb_month=_env_price(),
    )
    with StderrProgress() as progress:
        report = audit_registry(
            s3,
            RegistryLayout(root),
            request,
            cache=cache,
            warn=cache.warn if cache is not None else None,
            progress=progress if progress.enabled else None,
        ).report
    if args.format == "json":
        out.write(json.dumps(report.as_dict(), indent=2) + "\n")
    elif args.format == "markdown":
        out.write(to_markdown(report))
    elif args.format == "html":
        from regvault.reports.render import to_html

        out.write(to_html(report))
    else:
        _table(report, out)
    return report.exit_code


@dataclass(frozen=True)
class FileManifestCache:
    """``--cache-dir``: the manifest cache of one registry (bucket + root) in a gzip file. A missing file
    is an empty cache; a file that cannot be written is a warning, not a failed audit."""

    path: Path

    @classmethod
    def of(cls, directory: str, bucket: str, root: str) -> FileManifestCache:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{bucket}@{root}" if root else bucket)
        return cls(Path(directory).expanduser() / f"{name}.manifests.json.gz")

    def load(self) -> ManifestCache:
        from regvault.images.manifest_cache import ManifestCache

        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = None
        except OSError as exc:
            raise InvalidInput(f"cannot read the manifest cache {self.path}: {exc.strerror or exc}") from None
        return ManifestCache.loads(data)

    def save(self, cache: ManifestCache) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(self.path.name + ".partial")
            partial.write_bytes(cache.dumps())
            partial.replace(self.path)
        except OSError as exc:
            message = f"could not write the manifest cache {self.path}: {exc.strerror or exc}"
            print(f"warning: {message}", file=sys.stderr)

    def warn(self, problem: str) -> None:
        """Why the cache in the file was ignored."""
        print(f"warning: {self.path}: {problem}", file=sys.stderr)


def _table(report: AuditReport, out: TextIO) -> None:
    from rich.markup import escape
    from rich.table import Table

    from regvault.reports.render import missing_text

    terminal = console(out)
    s = report.summary
    colour = {"error": "red", "warning": "yellow", "info": "cyan"}
    groups = report.images
    grouped = {id(f) for g in groups for f in g.findings}
    for g in groups:
        state = "[yellow]deleted[/]" if g.state == "deleted" else "[red]broken[/]"
        what = "recoverable" if g.recoverable else "[red]NOT recoverable[/] from S3 versions"
        terminal.print(
            f"{state} {escape(g.repository)}:{escape(g.tag)} -> {(g.digest or '?')[:19]}: "
            f"{escape(missing_text(g))}; {what}"
        )
        if g.command:
            terminal.print(f"  repair: [bold]{escape(g.command)}[/]")
    if groups:
        terminal.print(
            "  (or all at once: regvault repair --apply; --include-deleted brings deleted tags back)\n"
        )
    rest = [f for f in report.findings if id(f) not in grouped]
    if rest:
        table = Table(box=None, header_style="bold", pad_edge=False)
        for column in ("SEVERITY", "CODE", "REPOSITORY", "TAG", "DIGEST", "RECOVERABLE", "MESSAGE"):
            table.add_column(
                column, no_wrap=column != "MESSAGE", min_width=40 if column == "MESSAGE" else None
            )
        for f in rest:
            table.add_row(
                f"[{colour[f.severity]}]{f.severity}[/]",
                f.code,
                f.repository or "",
                f.tag or "",
                (f.digest or "")[:19],
                {True: "yes", False: "NO", None: "-"}[f.recoverable],
                escape(f.message),
            )
        terminal.print(table)
    elif not groups:
        terminal.print("[green]no findings[/]")
    verdict = "[green]clean[/]" if not s["errors"] else f"[red]{s['errors']} error(s)[/]"
    terminal.print(
        f"audit {verdict}: {s['warnings']} warning(s), {s['infos']} info; {s['repositories']} repositories, "
        f"{s['tags']} tags ({s['deleted_tags']} deleted), {s['manifests']} manifests, {s['blobs']} blobs; "
        f"{s['object_versions']:,} object versions read with {s['s3_requests']} S3 requests "
        f"in {s['duration_s']:.1f} s" + _not_listed(s)
    )


def _not_listed(summary: dict[str, Any]) -> str:
    folders = summary.get("upload_folders_not_listed") or 0
    return f" (versions of {folders} upload folder(s) not listed, their live keys were)" if folders else ""


def _journal(args: argparse.Namespace, bucket: str, root: str) -> Any:
    if not args.reports_bucket:
        return None
    from regvault.journal.record import Journal, read_journal

    return Journal(read_journal(store(args, args.reports_bucket), bucket, root))


def _env_price() -> float | None:
    """REGVAULT_S3_PRICE_GB_MONTH, the price the report's storage and cost section uses instead of the
    shipped table (as for ``regvault usage``)."""
    from regvault.errors import InvalidInput
    from regvault.usage.prices import price_for

    raw = os.environ.get("REGVAULT_S3_PRICE_GB_MONTH")
    if not raw:
        return None
    try:
        return price_for(None, float(raw))[0]
    except ValueError:
        raise InvalidInput(f"REGVAULT_S3_PRICE_GB_MONTH is not a number: {raw[:40]!r}") from None
