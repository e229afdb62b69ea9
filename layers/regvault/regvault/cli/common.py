"""What every command shares: the common options, the bucket settings and store, the console."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias

from regvault.errors import InvalidInput

# what ``build_parser`` hands each command module's ``add_parser``
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

if TYPE_CHECKING:
    from rich.console import Console

    from regvault.aws.s3 import S3Store


def add_common_options(
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


def settings(args: argparse.Namespace) -> tuple[str, str]:
    """The registry bucket and root: the flags, else REGVAULT_BUCKET / REGVAULT_ROOT."""
    bucket = args.bucket or os.environ.get("REGVAULT_BUCKET") or ""
    root = args.root if args.root is not None else os.environ.get("REGVAULT_ROOT", "")
    return bucket, root


def store(args: argparse.Namespace, bucket: str | None = None) -> S3Store:
    """The registry bucket's store (or ``bucket``'s), with the endpoint, region and profile given."""
    from regvault.aws.clients import s3_client
    from regvault.aws.s3 import S3Store

    client = s3_client(endpoint_url=args.endpoint_url or None, region=args.region, profile=args.profile)
    return S3Store(bucket if bucket is not None else settings(args)[0], client)


def console(out: TextIO) -> Console:
    """A terminal gets tables at its width; files and pipes get wide, unwrapped lines."""
    from rich.console import Console

    if out is sys.stdout and sys.stdout.isatty():
        return Console(file=out, emoji=False)
    return Console(file=out, width=200, emoji=False)


def split_ref(text: str) -> tuple[str, str | None]:
    """REPO:TAG or REPO; a digest reference is refused."""
    from regvault.storage.reference import Reference

    ref = Reference.parse(text)
    if ref.digest is not None:
        raise InvalidInput("name a tag (REPO:TAG) or a repository (REPO), not a digest reference")
    return ref.repository, ref.tag
