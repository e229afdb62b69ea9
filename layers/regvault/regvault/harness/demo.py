"""``make demo``: the embedded default, end to end, on real parts.

Starts the S3 emulator and the real registry on loopback, pushes the sample images with skopeo
(OCI, Docker schema2, an OCI index and a Docker manifest list), re-pushes over a release tag, deletes
a manifest through the registry API, and shows ``regvault ls``. Every process it started is stopped
by PID at the end, on failure and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

from ..cli import main as regvault
from .local import LocalRegistry, push_samples


def _delete_manifest(env: LocalRegistry, repository: str, digest: str) -> int:
    token = base64.b64encode(f"{env.registry.user}:{env.registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{env.registry.address}/v2/{repository}/manifests/{digest}",
        method="DELETE",
        headers={"Authorization": f"Basic {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return int(response.status)


def run(workdir: Path | None, console: Console) -> int:
    started = time.monotonic()
    console.print(Rule("[bold]regvault demo[/]: a real registry on an S3 emulator, all on 127.0.0.1"))
    with LocalRegistry(workdir) as env:
        console.print(f"S3 emulator (moto server, patched)  {env.emulator.endpoint_url}")
        console.print(
            f"registry (docker-registry 2.8.2)     http://{env.registry.address}  bucket {env.bucket}"
        )
        console.print(f"working directory                    {env.workdir}\n")

        console.print(Rule("1. push sample images with skopeo"))
        with console.status("pushing…"):
            pushed = push_samples(env)
        for reference, item in pushed.items():
            console.print(f"  pushed {reference:<20} {item['digest']}")

        console.print(Rule("2. incidents: a bad re-push over a release tag, a manifest deleted"))
        lay = env.layout
        bad = lay.tag("app-1.0-bad", lay.image([lay.layer("base-1", 4096), lay.layer("oops")], label="bad"))
        digest = env.push(bad, "team/app:1.0")
        console.print(f"  re-pushed team/app:1.0 -> {digest} (the old image is now only in S3 versions)")
        api = pushed["team/api:2.0"]["digest"]
        status = _delete_manifest(env, "team/api", api)
        console.print(f"  DELETE /v2/team/api/manifests/{api[:19]}… -> HTTP {status} (tag 2.0 is gone)")

        console.print(Rule("3. regvault ls: what S3 holds, deleted tags and earlier digests included"))
        os.environ.update(env.client_env())
        code = regvault(["ls"])
        console.print(
            f"\n[dim]the CLI used: regvault ls --bucket {env.bucket} --endpoint-url "
            f"{env.emulator.endpoint_url}[/]"
        )
        console.print(Rule(f"done in {time.monotonic() - started:.0f} s; stopping the emulator and registry"))
        return code


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="regvault-demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the harness files here (default: a temp dir)")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 110)
    try:
        sys.exit(run(args.workdir, console))
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted: every process the demo started was stopped[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
