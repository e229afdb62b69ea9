"""The launch document's script and the instance role, against the real registry on the S3 emulator.

- The health check (sourced from the template's script) proves a write and a read through the
  registry to the bucket, and fails when the registry cannot reach S3 although /v2/ still answers.
- Every S3 request the real registry makes (push with multipart, pull, garbage-collect) maps to an
  IAM action the instance policy grants, on a resource it grants.
"""

import re
import ssl
import subprocess
import urllib.request

import pytest

from harness.bench import ANSI, LOG_LINE
from harness.local import LocalRegistry
from harness.setup_local import load_template
from regvault.setup.identity import InstanceAccess, instance_policy
from regvault.setup.launch import LaunchSpec

SPEC = LaunchSpec(
    instance_id="i-0123456789abcdef0",
    bucket="b",
    region="us-east-1",
    root="",
    htpasswd_secret="regvault/registry-htpasswd",
    tls_secret="regvault/registry-tls",
)


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    template = load_template()
    text = template["Resources"]["LaunchDocument"]["Properties"]["Content"]["mainSteps"][0]["inputs"][
        "runCommand"
    ][0]
    for name, (value,) in SPEC.document_parameters().items():
        text = text.replace(f"{{{{ {name} }}}}", value)
    path = tmp_path_factory.mktemp("script") / "launch.sh"
    path.write_text(text)
    return path


def health_check(script, env):
    reg = env.registry
    return subprocess.run(
        [
            "bash",
            "-c",
            f'REGVAULT_LIBRARY=1 source {script}; if health_check 127.0.0.1 {reg.port} "$1" "$2"; '
            "then echo PASSED; else echo FAILED; fi",
            "check",
            reg.user,
            reg.password,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def v2_status(env):
    context = ssl.create_default_context(cafile=str(env.registry.cert_dir / "ca.crt"))
    import base64

    token = base64.b64encode(f"{env.registry.user}:{env.registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"https://{env.registry.address}/v2/", headers={"Authorization": f"Basic {token}"}
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return response.status


def test_health_check_writes_and_reads_through_the_registry_to_the_bucket(script, tmp_path):
    with LocalRegistry(tmp_path / "ok", tls=True) as env:
        first = health_check(script, env)
        assert first.stdout.strip().endswith("PASSED"), first.stdout + first.stderr
        assert (
            "regvault: healthy:" in first.stderr
            and "wrote and read regvault-healthcheck:probe" in first.stderr
        )
        key = "docker/registry/v2/repositories/regvault-healthcheck/_manifests/tags/probe/current/link"
        versions = env.s3.list_object_versions(Bucket=env.bucket, Prefix=key)["Versions"]
        assert len(versions) == 1
        # a second launch checks again: a new write of the tag link, the same image
        again = health_check(script, env)
        assert again.stdout.strip().endswith("PASSED"), again.stdout + again.stderr
        assert len(env.s3.list_object_versions(Bucket=env.bucket, Prefix=key)["Versions"]) == 2
        # the probe is an ordinary, complete image: the audit finds nothing wrong with it
        import os

        from regvault.cli.main import main

        old = dict(os.environ)
        os.environ.update(env.client_env())
        try:
            code = main(["audit", "--format", "json", "--output", str(tmp_path / "audit.json")])
        finally:
            os.environ.clear()
            os.environ.update(old)
        assert code == 0


def test_health_check_fails_when_the_registry_cannot_reach_s3(script, tmp_path):
    with LocalRegistry(tmp_path / "dead", tls=True) as env:
        # Given the registry up, but its storage unreachable (credentials, region or network gone)
        env.supervisor.stop(env.emulator.proc)
        # /v2/ never touches storage: the old check (401/200 there) would have called this healthy
        assert v2_status(env) == 200
        result = health_check(script, env)
        assert result.stdout.strip().endswith("FAILED")
        [line] = [x for x in result.stderr.splitlines() if x.startswith("regvault: unhealthy")]
        assert "could not write a blob to the bucket" in line


def iam_action(method, target):
    """The IAM action AWS checks for one S3 request of the registry's driver (path-style)."""
    path, _, query = target.partition("?")
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    on_bucket = "/" not in path.strip("/")
    if on_bucket:
        if method == "POST" and "delete" in params:
            return "s3:DeleteObject"  # DeleteObjects checks DeleteObject per key
        if "uploads" in params:
            return "s3:ListBucketMultipartUploads"
        if "location" in params:
            return "s3:GetBucketLocation"
        return "s3:ListBucket"
    if method in ("GET", "HEAD"):
        return "s3:ListMultipartUploadParts" if "uploadId" in params else "s3:GetObject"
    if method == "DELETE":
        return "s3:AbortMultipartUpload" if "uploadId" in params else "s3:DeleteObject"
    return "s3:PutObject"  # PUT object, UploadPart(Copy), CopyObject, Create/CompleteMultipartUpload


def test_every_s3_request_of_the_real_registry_is_granted_by_the_instance_policy(tmp_path):
    with LocalRegistry(tmp_path / "role") as env:
        log = env.workdir / "emulator.log"
        start = log.stat().st_size
        lay = env.layout
        base = lay.layer("role-base", 4096)
        # a 6 MiB layer goes through the driver's multipart upload (chunks of 5 MiB)
        first = lay.tag("one", lay.image([base, lay.layer("role-big", 6 * 1024 * 1024)]))
        env.push(first, "team/app:1")
        env.push(lay.tag("two", lay.image([base, lay.layer("role-2")])), "team/app:1")  # overwrite
        env.skopeo.pull("team/app:1", tmp_path / "pulled")
        env.registry.garbage_collect(delete_untagged=True)  # sweeps the first image: deletes
        text = ANSI.sub("", log.read_bytes()[start:].decode(errors="replace"))
        requests = [
            (m["method"], m["target"])
            for m in LOG_LINE.finditer(text)
            if not m["target"].startswith("/moto-api")
        ]
    policy = instance_policy(InstanceAccess(env.bucket, "", region="us-east-1"))
    granted = {
        action: [st["Resource"]] if isinstance(st["Resource"], str) else st["Resource"]
        for st in policy["Statement"]
        for action in st["Action"]
    }
    used = set()
    for method, target in requests:
        action = iam_action(method, target)
        used.add(action)
        assert action in granted, (method, target, action)
        path = target.partition("?")[0].strip("/")
        if method == "POST" and "delete" in target.partition("?")[2]:
            path += "/keys-named-in-the-body"  # DeleteObjects: checked per key, all under the bucket
        arn = f"arn:aws:s3:::{path}"
        assert any(re.fullmatch(re.escape(r).replace(r"\*", ".*"), arn) for r in granted[action]), (
            arn,
            action,
        )
    # the push, the pull and the sweep really happened through these actions
    assert {"s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:DeleteObject"} <= used, used
