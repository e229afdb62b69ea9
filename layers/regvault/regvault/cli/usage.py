"""``regvault usage``: what the registry stores and costs, per repository."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, store
from regvault.reports.usage import by_cost, human, usage_lines, usage_markdown
from regvault.storage.layout import RegistryLayout

EXAMPLES = """\
examples:
  regvault usage                         totals and every repository, at S3 Standard prices
  regvault usage team/app --format json
  regvault usage --recovery-days 30      what the noncurrent versions would be with a 30-day window
  regvault usage --price-gb-month 0.0125 another price (or env REGVAULT_S3_PRICE_GB_MONTH)
"""


def add_parser(sub: Subparsers) -> None:
    usage = sub.add_parser(
        "usage",
        help="storage and monthly cost: totals, per repository, what-if for another recovery window",
        description="Bytes stored now and in noncurrent versions (what the recovery window holds), upload "
        "scratch and orphan blobs; per repository the bytes its live tags use (unique, and shared bytes "
        "divided among the repositories that use them, so rows add up) and the bytes only its history "
        "keeps; the monthly cost at S3 Standard prices for the region. One listing and the manifest reads "
        "the audit makes; nothing is written.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    usage.add_argument("repository", nargs="?", metavar="REPO")
    usage.add_argument("--recovery-days", type=int, metavar="N", help="what-if: a recovery window of N days")
    usage.add_argument(
        "--price-gb-month",
        type=float,
        metavar="USD",
        default=float(os.environ["REGVAULT_S3_PRICE_GB_MONTH"])
        if os.environ.get("REGVAULT_S3_PRICE_GB_MONTH")
        else None,
        help="USD per GB-month instead of the shipped S3 Standard price for the region",
    )
    usage.add_argument(
        "--workers", type=int, default=8, metavar="N", help="parallel manifest reads (default 8)"
    )
    add_common_options(usage, suppress=True, formats=("table", "json", "markdown"))


def cmd_usage(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.usage.usecase import UsageRequest, registry_usage

    s3 = store(args)
    _, root = settings(args)
    region = (
        getattr(args, "region", None) or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    request = UsageRequest(
        repository=args.repository,
        recovery_days=args.recovery_days,
        price_gb_month=args.price_gb_month,
        region=region,
        workers=args.workers,
        page_size=args.page_size,
    )
    doc = registry_usage(s3, RegistryLayout(root), request)
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
    elif args.format == "markdown":
        out.write(usage_markdown(doc))
    else:
        _table(doc, out)
    return 0


def _table(doc: dict[str, Any], out: TextIO) -> None:
    from rich.table import Table

    terminal = console(out)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("REPOSITORY", "LIVE", "UNIQUE", "SHARED (apportioned)", "HISTORY ONLY", "USD/MONTH"):
        table.add_column(column, no_wrap=True)
    for name, row in by_cost(doc):
        table.add_row(
            name,
            human(row["live_bytes"]),
            human(row["unique_bytes"]),
            human(row["shared_bytes"]),
            human(row["history_only_bytes"]),
            f"{row['monthly_usd']:.4f}",
        )
    terminal.print(table)
    for line in usage_lines(doc):
        terminal.print(line)
