"""``regvault ls``: repositories and tags as S3 holds them, deleted ones included."""

from __future__ import annotations

import argparse
import json
from typing import TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, store
from regvault.cli.progress import StderrProgress
from regvault.errors import InvalidInput
from regvault.images.listing import Listing
from regvault.images.manifests import short_media_type
from regvault.images.usecase import catalog
from regvault.storage.layout import RegistryLayout

EXAMPLES = """\
examples:
  regvault ls --bucket my-registry-bucket
  regvault ls team/app --format json --output tags.json
  regvault ls --bucket B --endpoint-url http://127.0.0.1:5000   # local emulator

Tags and repositories deleted from the registry still show (state 'deleted') while S3 keeps their
versions; EARLIER counts the other digests the tag pointed at that S3 still records.
"""


def add_parser(sub: Subparsers) -> None:
    ls = sub.add_parser(
        "ls",
        help="repositories and tags as S3 holds them, deleted ones included",
        description="List repositories and tags with their current digest, media type, when the "
        "tag was written and how many earlier digests its history holds.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("repository", nargs="?", metavar="REPO", help="only this repository (e.g. team/app)")
    add_common_options(ls, suppress=True)


def cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    if not 1 <= args.page_size <= 1000:
        raise InvalidInput("--page-size must be between 1 and 1000")
    s3 = store(args)
    _, root = settings(args)
    with StderrProgress() as bar:

        def progress(pages: int, versions: int) -> None:
            bar("listing object versions", versions, 0)

        result = catalog(
            s3,
            RegistryLayout(root),
            args.repository,
            page_size=args.page_size,
            progress=progress if bar.enabled else None,
        )
    if args.format == "json":
        out.write(json.dumps(result.document, indent=2) + "\n")
    else:
        _table(result.listing, result.document["summary"], out)
    return 0


def _table(listing: Listing, s: dict[str, int], out: TextIO) -> None:
    from rich.table import Table

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
    terminal = console(out)
    terminal.print(table)
    terminal.print(
        f"{s['repositories']} repositories, {s['tags']} tags; {s['object_versions']:,} object "
        f"versions ({s['delete_markers']:,} delete markers) read with {s['s3_requests']} S3 requests"
    )
