"""The core of the real-registry suite on what the launch script started, for registry:2 (Debian's
distribution 2.8.2) and registry:3 (distribution v3.1.1): each is launched through the launch document's
SSM command on an emulated instance, filled by the Docker CLI (build, push with cross-repository mounts)
and skopeo (an OCI index), then audited, restored, repaired after distribution's own garbage-collect and
an S3 delete, and collected by regvault's GC; every step ends with `docker pull` proving the image.

The tests of a version share its registry and run in order (each builds on the last)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.instance import engine_unavailable
from harness.local import LocalRegistry
from harness.on_instance import prepare_launch
from harness.stand_ins import V3_BINARY
from regvault.cli.main import main as regvault

pytestmark = pytest.mark.skipif(engine_unavailable() is not None, reason=f"{engine_unavailable()}")
VERSIONS = ["2", pytest.param("3", marks=pytest.mark.skipif(not V3_BINARY.exists(), reason="no v3 binary"))]


class Launched:
    """A launched registry with the Docker CLI on its instance as the client."""

    def __init__(self, env: LocalRegistry, major: str) -> None:
        self.env, self.major = env, major
        assert env.instance_host is not None
        self.instance = env.instance_host.instance
        self.host = f"localhost:{env.registry.port}"  # type: ignore[union-attr]
        self.built: dict[str, str] = {}  # name -> image id
        self.pushed: dict[str, str] = {}  # repo:tag -> digest

    def build(self, name: str, layers: list[str], workdir: Path, parent: str = "scratch") -> None:
        """An image with one new layer per name on ``parent`` (FROM scratch, or another built image)."""
        context = workdir / f"ctx-{name}"
        context.mkdir(parents=True, exist_ok=True)
        for layer in layers:
            (context / layer).write_bytes(secrets.token_bytes(16 * 1024))
        steps = "".join(f"COPY {layer} /{layer}\n" for layer in layers)
        base = parent if parent == "scratch" else f"{parent}:local"
        (context / "Dockerfile").write_text(f'FROM {base}\n{steps}CMD ["/{layers[0]}"]\n')
        self.instance.docker_build(context, f"{name}:local")

    def push(self, name: str, reference: str) -> str:
        target = f"{self.host}/{reference}"
        self.instance.docker("tag", f"{name}:local", target)
        out = self.instance.docker("push", target).stdout
        digest = next(w for w in out.split() if w.startswith("sha256:"))
        self.pushed[reference] = digest
        return str(out)

    def pull(self, reference: str) -> str:
        """``docker pull`` after removing the local copy: the digest the registry served."""
        target = f"{self.host}/{reference}"
        self.instance.docker("rmi", "-f", target, check=False)
        self.instance.docker("pull", target)
        digests = json.loads(
            self.instance.docker("image", "inspect", target, "--format", "{{json .RepoDigests}}").stdout
        )
        [digest] = [
            d.split("@", 1)[1] for d in digests if d.startswith(f"{self.host}/{reference.split(':')[0]}@")
        ]
        return str(digest)


@pytest.fixture(scope="module", params=VERSIONS)
def launched(request, tmp_path_factory) -> Iterator[Launched]:
    major = request.param
    with LocalRegistry(tmp_path_factory.mktemp(f"registry{major}"), on_instance=True) as env:
        assert env.instance_host is not None
        setup = prepare_launch(
            env.emulator,
            env.instance_host,
            env.bucket,
            image=f"public.ecr.aws/docker/library/registry:{major}",
        )
        out = setup.send(env.emulator.client("ssm"))
        assert out["Status"] == "Success", out["StandardOutputContent"][-2000:]
        env.use_launched(setup.registry(env.instance_host, env.workdir))
        client = Launched(env, major)
        login = client.instance.docker(
            "login", "-u", setup.user, "--password-stdin", client.host, input=setup.password
        )
        assert "Login Succeeded" in login.stdout
        yield client


@pytest.fixture
def cli(launched, monkeypatch):
    for name, value in launched.env.client_env().items():
        monkeypatch.setenv(name, value)

    def run(*argv: str) -> int:
        return regvault(list(argv))

    return run


def _audit(cli: Any, tmp_path: Path) -> dict[str, Any]:
    report = tmp_path / "audit.json"
    code = cli("audit", "--format", "json", "--output", str(report))
    return {"code": code, **json.loads(report.read_text())}


def test_push_with_docker_and_skopeo_then_a_clean_audit(launched, cli, tmp_path):
    # Given the Docker CLI's pushes (the app shares the base's layers: mounted across repositories)
    launched.build("base", ["base0", "base1"], tmp_path)
    launched.build("app1", ["app-v1"], tmp_path, parent="base")
    launched.push("base", "team/base:1")
    out = launched.push("app1", "team/app:1")
    assert "Mounted from team/base" in out, out
    # and skopeo's OCI index
    lay = launched.env.layout
    shared = lay.layer(f"multi-base-{launched.major}", 4096)
    amd = lay.image([shared, lay.layer("multi-amd64")], arch="amd64", label="multi")
    arm = lay.image([shared, lay.layer("multi-arm64")], arch="arm64", label="multi")
    launched.pushed["team/multi:1"] = launched.env.push(
        lay.tag("multi", lay.index([amd, arm])), "team/multi:1"
    )
    # Then the audit of what this registry version wrote is clean
    report = _audit(cli, tmp_path)
    assert report["code"] == 0 and report["summary"]["errors"] == 0, report["findings"]
    tags = {f"{t['repository']}:{t['tag']}" for t in report["tags"]}
    assert {"team/base:1", "team/app:1", "team/multi:1"} <= tags
    assert launched.pull("team/app:1") == launched.pushed["team/app:1"]


def test_restore_previous_and_docker_pulls_the_earlier_image(launched, cli, tmp_path):
    first = launched.pushed["team/app:1"]
    launched.build("app2", ["app-v2"], tmp_path, parent="base")
    launched.push("app2", "team/app:1")  # a bad re-push
    assert launched.pull("team/app:1") != first
    assert cli("restore", "team/app:1", "--previous", "--apply") == 0
    assert launched.pull("team/app:1") == first
    launched.pushed["team/app:1"] = first  # what the tag is now


def test_repair_after_distributions_gc_and_an_s3_delete_then_docker_pulls(launched, cli, tmp_path):
    env = launched.env
    # Given this version's own garbage-collect (the re-pushed image is untagged now) and a layer deleted in S3
    env.registry.garbage_collect(delete_untagged=True)
    layer = json.loads(env.skopeo.inspect_raw("team/base:1"))["layers"][-1]["digest"]
    env.s3.delete_object(Bucket=env.bucket, Key=env.layout_key_of_blob(layer))
    env.registry.restart()  # the blob-descriptor cache
    assert _audit(cli, tmp_path)["code"] == 1
    # When regvault repairs every broken image
    assert cli("repair", "--apply") == 0
    env.registry.restart()
    # Then the audit is clean and the Docker CLI and skopeo pull everything
    assert _audit(cli, tmp_path)["code"] == 0
    assert launched.pull("team/base:1") == launched.pushed["team/base:1"]
    assert launched.pull("team/app:1") == launched.pushed["team/app:1"]
    env.skopeo.pull("team/multi:1", tmp_path / "multi", all_images=True)


def test_regvault_gc_sweeps_untagged_and_every_tag_still_pulls(launched, cli, tmp_path):
    launched.build("gc1", ["gc-one"], tmp_path, parent="base")
    launched.build("gc2", ["gc-two"], tmp_path, parent="base")
    launched.push("gc1", "team/gc:1")
    launched.push("gc2", "team/gc:1")  # gc1's manifest is untagged now
    result = tmp_path / "gc.json"
    code = cli(
        "gc",
        "--delete-untagged",
        "--grace-hours",
        "0",
        "--apply",
        "--format",
        "json",
        "--output",
        str(result),
    )
    doc = json.loads(result.read_text())
    assert code == 0 and doc["applied"] and doc["summary"]["manifests"] >= 1, doc["summary"]
    launched.env.registry.restart()
    assert _audit(cli, tmp_path)["code"] == 0
    for reference in ("team/base:1", "team/app:1", "team/gc:1"):
        assert launched.pull(reference) == launched.pushed[reference], reference
    launched.env.skopeo.pull("team/multi:1", tmp_path / "multi-after-gc", all_images=True)
