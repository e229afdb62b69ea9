"""The ``regvault`` command line.

Common flags work before or after the command, like the AWS CLI:
``regvault ls --format json --bucket B --endpoint-url URL``. Machine formats go to stdout alone;
progress and errors go to stderr.

One module per command (``regvault.cli.ls``, ``audit``, ``history``, ``restore``, ``repair``, ``gc``,
``usage``, ``status``, ``setup``): each adds its subparser and runs it; the work itself is a use case
of the core.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from regvault import __version__
from regvault.cli import audit, gc, history, ls, repair, restore, setup, status, usage
from regvault.cli.common import Subparsers, add_common_options
from regvault.errors import RegvaultError

EPILOG = """\
environment:
  REGVAULT_BUCKET       default for --bucket
  REGVAULT_ROOT         default for --root
  AWS_ENDPOINT_URL      default for --endpoint-url (e.g. the local emulator)
  AWS_PROFILE, AWS_REGION, AWS_ACCESS_KEY_ID, ... as for the AWS CLI

exit codes: 0 done, 1 problems found, 2 could not run (bad input, no access, no registry)
"""

Command = Callable[[argparse.Namespace, TextIO], int]

# in the order --help lists them
COMMANDS: dict[str, tuple[Callable[[Subparsers], None], Command]] = {
    "ls": (ls.add_parser, ls.cmd_ls),
    "audit": (audit.add_parser, audit.cmd_audit),
    "history": (history.add_parser, history.cmd_history),
    "restore": (restore.add_parser, restore.cmd_restore),
    "repair": (repair.add_parser, repair.cmd_repair),
    "gc": (gc.add_parser, gc.cmd_gc),
    "usage": (usage.add_parser, usage.cmd_usage),
    "status": (status.add_parser, status.cmd_status),
    "setup": (setup.add_parser, setup.cmd_setup),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regvault",
        description="Audit, browse, restore and garbage-collect a Docker registry's S3 storage, object "
        "versions included.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"regvault {__version__}")
    add_common_options(parser, suppress=False, formats=("table", "json", "markdown", "html"))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add_parser, _ in COMMANDS.values():
        add_parser(sub)
    return parser


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
        return COMMANDS[args.command][1](args, out)
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
