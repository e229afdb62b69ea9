"""The audit on what the real registry wrote, damaged the ways registries and operators do."""

import json
import math
import os
import random

import pytest

from regvault.cli.main import main
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, LayerLink, RegistryLayout, RevisionLink, TagCurrentLink

from .support import all_versions, registry_request


def audit(capsys, *argv):
    code = main(["audit", "--format", "json", *argv])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return code, json.loads(out)


def codes_for(doc, repository):
    return {
        (f["code"], f["digest"], f["recoverable"]) for f in doc["findings"] if f["repository"] == repository
    }


@pytest.fixture(scope="module")
def damaged(scratch):
    env = scratch
    lay = env.layout
    layout = RegistryLayout(env.root)
    base = lay.layer("audit-base")
    images = {}

    def push(repo, label, tag="1"):
        unique = lay.layer(f"audit-{repo}-{label}")
        image = lay.tag(f"{repo}-{label}", lay.image([base, unique], label=label))
        digest = env.push(image, f"{repo}:{tag}")
        config = next(d for d in image.blobs if d not in (base.digest, unique.digest))
        images[(repo, label)] = {
            "manifest": Digest.parse(digest),
            "layer": Digest.parse(unique.digest),
            "config": config,
        }
        return images[(repo, label)]

    for repo in (
        "ok/app",
        "dmg/blob",
        "dmg/link",
        "dmg/manifest",
        "dmg/badlink",
        "dmg/badtag",
        "dmg/corrupt",
        "dmg/size",
        "dmg/samesize",
        "dmg/revision",
        "dmg/deleted",
    ):
        push(repo, "v1")
    push("dmg/gone", "v1")
    push("dmg/gone", "v2")
    amd = lay.image([base, lay.layer("audit-idx-amd")], arch="amd64")
    arm = lay.image([base, lay.layer("audit-idx-arm")], arch="arm64")
    index = lay.tag("audit-index", lay.index([amd, arm]))
    index_digest = env.push(index, "dmg/index:1")
    child = Digest.parse(arm.digest)
    # the clean state, before any damage; each test sets the client environment itself (cli_env,
    # function-scoped) or passes it explicitly, so nothing leaks into later modules
    return env, layout, images, index_digest, child


def test_healthy_registry_audits_clean(damaged, capsys, cli_env):
    env, *_ = damaged
    cli_env(env)
    code, doc = audit(capsys)
    assert code == 0
    assert [f for f in doc["findings"] if f["severity"] == "error"] == []
    # only bucket posture warnings: the local bucket has no TLS policy, encryption or public access block
    assert {f["code"] for f in doc["findings"]} <= {
        "INSECURE_TRANSPORT_ALLOWED",
        "BUCKET_NOT_ENCRYPTED",
        "PUBLIC_ACCESS_NOT_BLOCKED",
    }
    s = doc["summary"]
    assert set(doc) >= {"bucket", "root", "started_at", "finished_at", "summary", "findings", "tags"}
    assert s["tags"] == 13 and s["errors"] == 0
    # cost: one list per 1,000 versions (+ a jump and a live-key listing per upload folder skipped), one
    # GET per manifest, the bucket posture reads
    skips = 2 * s["upload_folders_not_listed"]
    assert s["s3_requests"] <= math.ceil(s["object_versions"] / 1000) + skips + s["manifests"] + 6
    gone = next(t for t in doc["tags"] if t["repository"] == "dmg/gone")
    assert [h["current"] for h in gone["history"]] == [True, False]
    assert all(h["recoverable"] for h in gone["history"])


def test_each_damage_is_named_with_code_digest_and_recoverable(damaged, capsys, cli_env):
    env, layout, images, _index_digest, child = damaged
    cli_env(env)
    s3, bucket = env.s3, env.bucket

    def key(entity):
        return layout.key(entity)

    img = {repo: images[(repo, "v1")] for repo, label in images if label == "v1"}
    # Given: S3-level deletes and corruptions, a manifest delete through the API, versions purged
    s3.delete_object(Bucket=bucket, Key=key(BlobData(img["dmg/blob"]["layer"])))
    s3.delete_object(Bucket=bucket, Key=key(LayerLink("dmg/link", img["dmg/link"]["layer"])))
    s3.delete_object(Bucket=bucket, Key=key(BlobData(img["dmg/manifest"]["manifest"])))
    s3.put_object(
        Bucket=bucket, Key=key(LayerLink("dmg/badlink", img["dmg/badlink"]["layer"])), Body=b"garbage!"
    )
    s3.put_object(Bucket=bucket, Key=key(TagCurrentLink("dmg/badtag", "1")), Body=b"sha256:nope")
    s3.put_object(
        Bucket=bucket, Key=key(BlobData(img["dmg/corrupt"]["manifest"])), Body=b'{"schemaVersion": 2}'
    )
    s3.put_object(Bucket=bucket, Key=key(BlobData(img["dmg/size"]["layer"])), Body=b"short")
    size = s3.head_object(Bucket=bucket, Key=key(BlobData(img["dmg/samesize"]["layer"])))["ContentLength"]
    s3.put_object(Bucket=bucket, Key=key(BlobData(img["dmg/samesize"]["layer"])), Body=random.randbytes(size))
    s3.delete_object(Bucket=bucket, Key=key(RevisionLink("dmg/revision", img["dmg/revision"]["manifest"])))
    s3.delete_object(Bucket=bucket, Key=key(BlobData(child)))
    assert (
        registry_request(env, "DELETE", f"/v2/dmg/deleted/manifests/{img['dmg/deleted']['manifest']}") == 202
    )
    gone_v1 = images[("dmg/gone", "v1")]
    gone_key = key(BlobData(gone_v1["layer"]))
    for v in all_versions(env):
        if v["Key"] == gone_key:
            s3.delete_object(Bucket=bucket, Key=gone_key, VersionId=v["VersionId"])

    # When
    code, doc = audit(capsys)

    # Then
    assert code == 1
    d = {repo: {k: str(v) for k, v in item.items()} for repo, item in img.items()}
    assert ("BLOB_MISSING", d["dmg/blob"]["layer"], True) in codes_for(doc, "dmg/blob")
    assert codes_for(doc, "dmg/link") == {("LAYER_LINK_MISSING", d["dmg/link"]["layer"], True)}
    assert codes_for(doc, "dmg/manifest") == {("TAG_TARGET_MISSING", d["dmg/manifest"]["manifest"], True)}
    assert codes_for(doc, "dmg/badlink") == {("LINK_MALFORMED", d["dmg/badlink"]["layer"], True)}
    assert codes_for(doc, "dmg/badtag") == {("LINK_MALFORMED", None, True)}
    assert codes_for(doc, "dmg/corrupt") == {("MANIFEST_DIGEST_MISMATCH", d["dmg/corrupt"]["manifest"], True)}
    assert codes_for(doc, "dmg/size") == {("BLOB_SIZE_MISMATCH", d["dmg/size"]["layer"], True)}
    assert codes_for(doc, "dmg/revision") == {("REVISION_LINK_MISSING", d["dmg/revision"]["manifest"], True)}
    assert codes_for(doc, "dmg/index") == {("CHILD_MANIFEST_MISSING", str(child), True)}
    assert codes_for(doc, "dmg/deleted") == {("TAG_DELETED", d["dmg/deleted"]["manifest"], True)}
    assert codes_for(doc, "dmg/gone") == {("HISTORY_UNRECOVERABLE", str(gone_v1["manifest"]), False)}
    unrecoverable = next(f for f in doc["findings"] if f["code"] == "HISTORY_UNRECOVERABLE")
    assert unrecoverable["key"] == gone_key
    # same-size overwrite: only a hint without --deep; the healthy repository has no finding at all
    assert codes_for(doc, None) >= {("BLOB_OVERWRITTEN", d["dmg/samesize"]["layer"], None)}
    assert codes_for(doc, "ok/app") == set()
    history = next(t for t in doc["tags"] if t["repository"] == "dmg/gone")["history"]
    assert history[1]["recoverable"] is False and history[1]["missing"] == [gone_key]

    # deep mode hashes the blobs and names the same-size corruption
    code, deep = audit(capsys, "--deep")
    assert ("BLOB_DIGEST_MISMATCH", d["dmg/samesize"]["layer"], True) in codes_for(deep, None)
    assert deep["summary"]["blobs_verified"] > 0 and deep["summary"]["bytes_verified"] > 0


def test_orphans_respect_the_grace_window(damaged, capsys, cli_env):
    env, layout, *_ = damaged
    cli_env(env)
    data = b"orphan blob nobody references"
    orphan = Digest.of(data)
    env.s3.put_object(Bucket=env.bucket, Key=layout.key(BlobData(orphan)), Body=data)
    _, doc = audit(capsys)
    assert not [f for f in doc["findings"] if f["code"] == "ORPHAN_BLOB" and f["digest"] == str(orphan)]
    _, doc = audit(capsys, "--grace-hours", "0")
    orphans = [f for f in doc["findings"] if f["code"] == "ORPHAN_BLOB" and f["digest"] == str(orphan)]
    assert len(orphans) == 1 and orphans[0]["severity"] == "info"


@pytest.mark.parametrize("shards", ["16", "256"])
def test_the_sharded_audit_reports_what_one_walk_reports(damaged, capsys, cli_env, shards):
    # Given what the real registry wrote, damaged; When audited in key ranges listed in parallel
    env, *_ = damaged
    cli_env(env)
    code, one = audit(capsys, "--grace-hours", "0")
    sharded_code, sharded = audit(capsys, "--grace-hours", "0", "--shards", shards, "--workers", "8")
    # Then the report is the same, finding for finding and tag for tag; only its cost differs
    for doc in (one, sharded):
        for name in ("started_at", "finished_at"):
            doc.pop(name)
        costs = [doc["summary"].pop(name) for name in ("duration_s", "s3_requests")]
    assert sharded == one and sharded_code == code and one["findings"]
    assert costs[1] > len(RegistryLayout("").shard_bounds(int(shards)))  # one list request per range at least


def test_markdown_and_table_render_the_same_findings(damaged, capsys, cli_env, tmp_path):
    env, *_ = damaged
    cli_env(env)
    _, doc = audit(capsys)
    assert main(["audit", "--format", "markdown", "--output", str(tmp_path / "r.md")]) == 1
    md = (tmp_path / "r.md").read_text()
    for finding in doc["findings"]:
        assert f"`{finding['code']}`" in md
    assert md.startswith("# regvault audit: ") and "| repository | tag | state |" in md
    assert main(["audit"]) == 1
    table = capsys.readouterr().out
    assert "TAG_TARGET_MISSING" in table and "error(s)" in table


def test_progress_bar_only_on_a_terminal(damaged, tmp_path):
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    env, *_ = damaged
    regvault = str(Path(sys.executable).with_name("regvault"))
    environ = {**os.environ, **env.client_env()}
    out = tmp_path / "report.json"
    # a pipe: no progress output at all, the report alone
    piped = subprocess.run(
        [regvault, "audit", "--format", "json"], env=environ, capture_output=True, text=True
    )
    assert piped.stderr == "" and json.loads(piped.stdout)["summary"]["object_versions"] > 0
    if shutil.which("script") is None:
        pytest.skip("util-linux 'script' is needed to fake a terminal")
    tty = subprocess.run(
        ["script", "-qec", f"{regvault} audit --deep --format json --output {out}", "/dev/null"],
        env=environ,
        capture_output=True,
        text=True,
    )
    assert "listing object versions" in tty.stdout and "verifying blobs (sha256)" in tty.stdout
    assert json.loads(out.read_text())["summary"]["deep"] is True
