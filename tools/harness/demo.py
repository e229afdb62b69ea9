"""``make demo``: the embedded default, end to end, on real parts.

Starts the S3 emulator and the real registry on loopback, pushes the sample images with skopeo
(OCI, Docker schema2, an OCI index and a Docker manifest list), audits (clean), plays the incidents
people fear (a bad re-push, a manifest delete, garbage-collect --delete-untagged, an S3-level delete),
shows ls, the audit catching each, history, restores planned and applied, a final clean audit and
skopeo pulling what came back; then regvault gc (plan, apply, undo) and regvault usage. Every process
it started is stopped by PID, on failure and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from harness.instance import engine_unavailable
from harness.local import LocalRegistry, push_samples
from harness.on_instance import LaunchedRegistry
from harness.processes import free_port
from harness.setup_local import HANDLERS, LocalSetup
from regvault.cli.main import main as regvault
from regvault.setup.launch import CONTAINER_PATHS


def run(workdir: Path | None, output: Path, console: Console) -> int:
    started = time.monotonic()
    console.print(Rule("[bold]regvault demo[/]: a real registry on an S3 emulator, all on 127.0.0.1"))
    unavailable = engine_unavailable()
    if unavailable:
        console.print(
            f"[yellow]no Docker Engine can run here ({unavailable}): the registry runs as a plain process, "
            "the launch command is only recorded[/]"
        )
    with LocalRegistry(
        workdir,
        lambda_handlers=str(HANDLERS),
        protected_tags=PROTECTED,
        journal=True,
        on_instance=unavailable is None,
    ) as env:
        console.print(f"S3 emulator (moto server, patched)  {env.emulator.endpoint_url}")
        if env.instance_host is None:
            console.print(
                f"registry (docker-registry 2.8.2)     http://{env.registry.address}  bucket {env.bucket}"
            )
        else:
            console.print(
                "EC2 instance (emulated)              its own dockerd in a private mount namespace; "
                f"public.ecr.aws is {env.instance_host.ecr.address}:443 (a local stand-in)"
            )
        console.print(f"working directory                    {env.workdir}\n")
        os.environ.update(env.client_env())
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")  # the journal's metrics: not on screen
        output.mkdir(parents=True, exist_ok=True)

        step(console, 0, "setup: the template's Setup state machine, run by the emulator")
        setup_in_emulator(env, console)

        step(console, 1, "push sample images with skopeo")
        with console.status("pushing…"):
            pushed = push_samples(env)
        for reference, item in pushed.items():
            console.print(f"  pushed {reference:<20} {item['digest']}")

        step(console, 2, "regvault audit on the healthy registry")
        clean = regvault(["audit"])
        console.print(
            f"[dim]exit code {clean} (0: no error; warnings: the lifted TLS policy, the recovery window)[/]"
        )

        step(console, 3, "incidents people fear")
        time.sleep(1.1)  # S3 times have one-second resolution: keep the incidents after the pushes
        lay = env.layout
        bad = lay.tag("app-1.0-bad", lay.image([lay.layer("base-1", 4096), lay.layer("oops")], label="bad"))
        digest = env.push(bad, "team/app:1.0")
        console.print(
            f"  a bad re-push over team/app:1.0 -> {digest[:19]}… (the old image lives on in S3 versions)"
        )
        api = pushed["team/api:2.0"]["digest"]
        status = env.distribution_client().delete_manifest("team/api", api)
        console.print(f"  DELETE /v2/team/api/manifests/{api[:19]}… -> HTTP {status} (the tag is gone)")
        env.registry.garbage_collect(delete_untagged=True)
        env.registry.restart()  # drop the in-memory blob-descriptor cache (distribution #3743)
        console.print(
            "  docker-registry garbage-collect --delete-untagged (sweeps index children: distribution #3004)"
        )
        big = max(pushed["team/app:1.1"]["image"].blobs.items(), key=lambda kv: kv[1])[0]
        env.s3.delete_object(Bucket=env.bucket, Key=env.layout_key_of_blob(big))
        console.print(f"  an S3-level delete of team/app:1.1's 6 MiB layer {big[:19]}…")

        step(console, 4, "regvault ls: deleted tags and earlier digests included")
        regvault(["ls"])

        step(console, 5, "regvault audit: what broke, and whether S3 versions can bring it back")
        broken = regvault(["audit"])
        for fmt, name in (("json", "audit-broken.json"), ("html", "audit-broken.html")):
            regvault(["audit", "--format", fmt, "--output", str(output / name)])
        console.print(f"[dim]exit code {broken} (1: errors found); reports in {output}/audit-broken.*[/]")

        step(console, 6, "regvault history team/app:1.0")
        regvault(["history", "team/app:1.0"])

        step(console, 7, "restore the bad re-push, then repair the rest: plan first, then apply")
        regvault(["restore", "team/app:1.0", "--previous"])
        regvault(["restore", "team/app:1.0", "--previous", "--apply"])
        planned = regvault(["repair"])  # every broken live image, in place: nothing written yet
        repaired = regvault(
            ["repair", "--apply", "--format", "json", "--output", str(output / "repair.json")]
        )
        done = json.loads((output / "repair.json").read_text())
        for item in done["images"]:
            console.print(
                f"  repaired {item['repository']}:{item['tag']} in place "
                f"({item['operations']} object version(s) copied forward)"
            )
        regvault(["repair", "team/api", "--include-deleted", "--apply"])  # the deleted tag, as it last was
        env.registry.restart()  # blobs came back: drop the blob-descriptor cache

        step(console, 8, "the final audit, and skopeo pulling what came back")
        final = regvault(["audit"])
        for fmt, name in (("json", "audit.json"), ("markdown", "audit.md"), ("html", "audit.html")):
            regvault(["audit", "--format", fmt, "--output", str(output / name)])
        pulled = 0
        for reference, everything in (
            ("team/app:1.0", False),
            ("team/multi:1", True),
            ("team/api:2.0", False),
        ):
            env.skopeo.pull(reference, env.workdir / f"pull-{pulled}", all_images=everything)
            pulled += 1
            console.print(f"  skopeo pulled and verified {reference}")
        console.print(f"[dim]reports: {output}/audit.html (open it in a browser), audit.json, audit.md[/]")

        step(console, 9, "regvault gc: online, index- and referrer-aware, reversible (delete markers only)")
        gc = ["gc", "--delete-untagged", "--grace-hours", "0"]
        regvault(gc)
        regvault([*gc, "--apply", "--format", "json", "--output", str(output / "gc.json")])
        run_id = json.loads((output / "gc.json").read_text())["run_id"]
        console.print(f"  applied: run {run_id} (its record: every swept key and the version it hid)")
        after_gc = regvault(["audit"])
        env.skopeo.pull("team/multi:1", env.workdir / "pull-after-gc", all_images=True)
        console.print(
            "  skopeo pulled and verified team/multi:1 after the GC (the index's children were kept)"
        )
        regvault(["gc", "--undo", run_id])
        undone = regvault(["gc", "--undo", run_id, "--apply"])

        step(console, 10, "regvault usage: what each repository stores and costs")
        usage = regvault(["usage", "--recovery-days", "30"])

        step(console, 11, f"protected tags ({PROTECTED}) and the push journal: who moved a tag")
        guarded = guard_and_journal(env, console)

        step(console, 12, "the seed's own client: docker login, build, push, curl, pull by tag and digest")
        seeded = seed_procedure(env, console)
        console.print(Rule(f"done in {time.monotonic() - started:.0f} s; stopping the emulator and registry"))
        ok = clean == 0 and broken == 1 and final == 0 and pulled == 3 and after_gc == 0
        ok = ok and planned == 0 and repaired == 0 and len(done["images"]) == 3
        return 0 if ok and undone == 0 and usage == 0 and guarded and seeded else 1


PROTECTED = "release/*:v*"


def guard_and_journal(env: LocalRegistry, console: Console) -> bool:
    """A release tag pushed, then pushed over: the guard puts it back within seconds and its notice
    says who tried (the registry's notifications, kept in the push journal)."""
    lay = env.layout
    client = env.distribution_client()
    v1 = lay.tag("rel-v1", lay.image([lay.layer("base-1", 4096), lay.layer("rel-v1")], label="release v1"))
    first = env.push(v1, "release/app:v1")
    console.print(f"  pushed release/app:v1 -> {first[:19]}… (a first push: the guard pins it)")
    time.sleep(1.5)
    again = lay.tag("rel-v1b", lay.image([lay.layer("base-1", 4096), lay.layer("rel-oops")], label="oops"))
    started = time.monotonic()
    second = env.push(again, "release/app:v1")
    console.print(f"  {env.registry.user} pushes another image over it -> {second[:19]}…")
    deadline = started + 30
    while client.digest_of("release/app", "v1") != first and time.monotonic() < deadline:
        time.sleep(0.2)
    back = client.digest_of("release/app", "v1") == first
    console.print(
        f"  {'put back' if back else 'NOT put back'}: release/app:v1 serves {first[:19]}… again after "
        f"{time.monotonic() - started:.1f} s"
    )
    notices: list[dict[str, str]] = []
    while time.monotonic() < deadline and not any("put back" in n["subject"] for n in notices):
        notices += env.notices()
        time.sleep(0.3)
    for notice in notices:
        console.print(f"  SNS: [bold]{escape(notice['subject'])}[/]", soft_wrap=True)
        console.print(f"    {escape(notice['message'])}", soft_wrap=True)
    history = regvault(["history", "release/app:v1", "--reports-bucket", env.reports_bucket])
    return back and history == 0 and any(f"by {env.registry.user};" in n["message"] for n in notices)


def setup_in_emulator(env: LocalRegistry, console: Console) -> None:
    """The same ASL and Lambda handlers sam deploy installs: bucket, secrets, IAM chain, association
    with an emulated instance, and the launch command. With a Docker Engine the command runs on the
    instance (the registry container is what every later step talks to); without one it is recorded."""
    setup = LocalSetup(env.emulator)
    machine, instance = setup.deploy(), setup.instance()
    properties = {
        "Name": "regvault-demo",
        "Region": "us-east-1",
        "InstanceId": instance,
        "BucketName": env.bucket,
        "RegistryUsers": "admin,ci",
        "LaunchDocument": "regvault-launch",
        # the emulated SSM agent, like a real one that ran without credentials, registers only
        # after a reboot: the demo allows it (sam deploy's default is to fail with the remedy)
        "AllowReboot": "true",
        "AgentGraceSeconds": "30",
        # ProtectedTags is set: the setup sends the bucket's object events to EventBridge
        "BucketEvents": "true",
    }
    if env.instance_host is not None:
        env.instance_host.register(instance)
        properties.update(
            RegistryPort=str(free_port()),
            # EnableJournal: the registry's notifications go to the JournalFunction's (loopback) URL
            JournalUrl=env.journal.url if env.journal else "",
            JournalSecretId=env.journal_secret_arn if env.journal else "",
        )
    with console.status("running the Setup state machine…"):
        out = setup.run(machine, properties, timeout=600)
    preflight = out["preflight"]["value"]
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("STEP")
    table.add_column("RESULT")
    table.add_row("preflight", f"{len(preflight['problems'])} problem(s), nothing written before this passed")
    for note in preflight["notes"]:
        table.add_row("", f"[dim]{escape(note)}[/]")
    table.add_row("storage", "; ".join(out["storage"]["value"]["changed"]) or "already converged")
    table.add_row("secrets", "; ".join(out["secrets"]["value"]["changed"]))
    table.add_row("identity", "; ".join(out["identity"]["value"]["changed"]))
    table.add_row("association", f"{out['association']['value']['association']} with {instance}")
    managed = out["managed"]["value"]
    table.add_row(
        "ssm agent",
        "online after one reboot (AllowReboot=true)" if managed["rebooted"] else "online",
    )
    launch = out["launch"]["value"]
    table.add_row("launch", f"command {launch['command_id']}: {launch['status']}")
    console.print(table)
    ssm = setup.clients["ssm"]
    [command] = ssm.list_commands()["Commands"]
    names = {k: v[0] for k, v in command["Parameters"].items() if k != "ConfigBase64"}
    console.print(f"  SendCommand parameters (names, never secret values): {names}")
    if env.instance_host is not None:
        invocation = ssm.get_command_invocation(CommandId=launch["command_id"], InstanceId=instance)
        console.print(
            f"  the launch script on the instance ({invocation['Status']}, "
            f"exit {invocation['ResponseCode']}), its own lines (StandardErrorContent):"
        )
        for line in invocation["StandardErrorContent"].splitlines():
            console.print(f"    {escape(line)}", soft_wrap=True)
        env.use_launched(launched_registry(env, out["secrets"]["value"], int(properties["RegistryPort"])))
        running = env.instance_host.instance.docker(
            "ps", "--format", "{{.Names}} {{.Image}} {{.Status}} {{.Command}}"
        ).stdout.strip()
        console.print(f"  docker ps on the instance: {escape(running)}")
        console.print(
            f"  registry                           https://{env.registry.address} (user admin) "
            f"bucket {env.bucket}"
        )
    # Locally the CLI speaks plain HTTP to the emulator, and the emulator enforces the TLS-only bucket
    # policy the setup just added (the instance's registry uses the emulator's TLS listener): lift that
    # one statement for the CLI (the audit reports it as INSECURE_TRANSPORT_ALLOWED).
    env.s3.delete_bucket_policy(Bucket=env.bucket)
    console.print(
        "  [dim]local only: the TLS-only bucket policy is lifted for the CLI (it speaks plain HTTP)[/]"
    )


def launched_registry(env: LocalRegistry, secrets: dict[str, str], port: int) -> LaunchedRegistry:
    """The container the launch script started, as the demo's registry (user admin)."""
    sm = env.emulator.client("secretsmanager")
    users = json.loads(sm.get_secret_value(SecretId=secrets["users_secret_arn"])["SecretString"])
    tls = json.loads(sm.get_secret_value(SecretId=secrets["tls_secret_arn"])["SecretString"])
    assert env.instance_host is not None
    return LaunchedRegistry(
        env.instance_host, env.workdir, port, "admin", users["passwords"]["admin"], tls["certificate"],
        CONTAINER_PATHS["2"],
    )  # fmt: skip


def seed_procedure(env: LocalRegistry, console: Console) -> bool:
    """The seed's own procedure against the launched registry, command for command, with the Docker
    CLI on the instance."""
    if env.instance_host is None:
        console.print("  [yellow]skipped: no Docker Engine can run here (the registry is a plain process)[/]")
        return True
    instance, reg = env.instance_host.instance, env.registry
    host = f"localhost:{reg.port}"
    ref = f"{host}/seed/hello"

    def show(command: str, result: str = "") -> None:
        console.print(f"  [bold]$ {escape(command)}[/]", soft_wrap=True)
        for line in result.strip().splitlines()[-4:]:
            console.print(f"    {escape(line)}", soft_wrap=True)

    show(
        f"docker login -u {reg.user} --password-stdin {host}",
        instance.docker("login", "-u", reg.user, "--password-stdin", host, input=reg.password).stdout,
    )
    context = env.workdir / "seed-image"
    context.mkdir(exist_ok=True)
    for n in range(3):
        (context / f"layer{n}.bin").write_bytes(os.urandom(256 * 1024))
    (context / "Dockerfile").write_text(
        "FROM scratch\n" + "".join(f"COPY layer{n}.bin /\n" for n in range(3)) + 'CMD ["/layer0.bin"]\n'
    )
    instance.docker_build(context, "hello:local")
    show("docker build -t hello:local .   (FROM scratch, three layers)")
    instance.docker("tag", "hello:local", f"{ref}:1")
    show(f"docker tag hello:local {ref}:1")
    pushed = instance.docker("push", f"{ref}:1").stdout
    show(f"docker push {ref}:1", pushed)
    digest = next((w for w in pushed.split() if w.startswith("sha256:")), "")
    curl = ["curl", "-sS", "--cacert", str(reg.cert_dir / "ca.crt"), "-u", f"{reg.user}:{reg.password}"]
    base = f"https://localhost:{reg.port}/v2"
    for path, accept in (
        ("/_catalog", None),
        ("/seed/hello/tags/list", None),
        ("/seed/hello/manifests/1", "application/vnd.docker.distribution.manifest.v2+json"),
    ):
        argv = [*curl, *(["-H", f"Accept: {accept}"] if accept else []), f"{base}{path}"]
        body = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False).stdout
        shown = body if len(body) < 200 else body[:200] + "…"
        header = f"-H 'Accept: {accept}' " if accept else ""
        show(f"curl -u {reg.user}:*** {header}{base}{path}", shown)
    instance.docker("rmi", f"{ref}:1", "hello:local")
    show(f"docker rmi {ref}:1 hello:local")
    show(f"docker pull {ref}:1", instance.docker("pull", f"{ref}:1").stdout)
    show(f"docker pull {ref}@{digest}", instance.docker("pull", f"{ref}@{digest}").stdout)
    pulled = instance.docker("image", "inspect", f"{ref}:1", "--format", "{{json .RepoDigests}}").stdout
    ok = bool(digest) and digest in pulled
    console.print(f"  {'pulled by tag and by digest' if ok else 'NOT pulled'}: {ref}@{digest[:19]}…")
    return ok


def step(console: Console, number: int, title: str) -> None:
    console.print()
    console.print(Rule(f"{number}. {title}"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="regvault-demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the harness files here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=Path("demo-output"), help="where the reports go")
    args = parser.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200, emoji=False)
    try:
        sys.exit(run(args.workdir, args.output, console))
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted: every process the demo started was stopped[/]")
        sys.exit(130)


if __name__ == "__main__":
    main()
