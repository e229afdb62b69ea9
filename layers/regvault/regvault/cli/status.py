"""``regvault status``: bucket posture, whether the registry answers, and the last audit."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any, TextIO

from regvault.cli.common import Subparsers, add_common_options, console, settings, store
from regvault.storage.layout import RegistryLayout


def add_parser(sub: Subparsers) -> None:
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
    add_common_options(status, suppress=True)


def cmd_status(args: argparse.Namespace, out: TextIO) -> int:
    from regvault.reports.status import gather

    s3 = store(args)
    _, root = settings(args)
    reports_bucket = args.reports_bucket or os.environ.get("REGVAULT_REPORTS_BUCKET")
    reports = store(args, reports_bucket) if reports_bucket else None
    s3.check_bucket()
    doc = gather(s3, RegistryLayout(root), args.registry_url, args.registry_ca, reports)
    if args.format == "json":
        out.write(json.dumps(doc, indent=2) + "\n")
    else:
        _print(doc, out)
    return 0 if doc["ok"] else 1


def _print(doc: dict[str, Any], out: TextIO) -> None:
    terminal = console(out)
    p = doc["posture"]
    window = (
        f"{p['recovery_window_days']} days"
        if p["recovery_window_days"] is not None
        else "versions never expire"
    )
    terminal.print(
        f"bucket     {doc['bucket']} (root {doc['root'] or '(empty)'}): versioning {p['versioning']}, "
        f"recovery window {window}"
    )
    for f in p["findings"]:
        terminal.print(
            f"           [{'red' if f['severity'] == 'error' else 'yellow'}]{f['code']}[/]: {f['message']}"
        )
    reg = doc["registry"]
    if reg is None:
        terminal.print("registry   not checked (--registry-url)")
    elif reg["reachable"]:
        terminal.print(
            f"registry   [green]answers[/] at {reg['url']} (HTTP {reg['http_status']}, auth {reg['auth']})"
        )
    else:
        terminal.print(
            f"registry   [red]unreachable[/] at {reg['url']}: {reg.get('detail') or reg.get('http_status')}"
        )
    audit = doc["last_audit"]
    if audit is None:
        terminal.print("last audit not checked (--reports-bucket / REGVAULT_REPORTS_BUCKET)")
    elif audit.get("missing"):
        terminal.print(f"last audit none yet ({audit['report']})")
    else:
        s = audit["summary"]
        terminal.print(
            f"last audit {audit['finished_at'][:19]}: {s['errors']} error(s), {s['warnings']} warning(s), "
            f"{s['tags']} tags — {audit['report']}"
        )
