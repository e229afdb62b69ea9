"""regvault gc on what the real registry wrote: plan, apply while skopeo pushes, every tag still pulls
(skopeo and a second, HTTP-API client), the index's children and a referrer survive, and undo."""

import json
import threading
from datetime import timedelta

import pytest

from harness.distclient import OCI_MANIFEST, DistributionClient
from harness.local import LocalRegistry
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.storage.layout import RegistryLayout


@pytest.fixture(scope="module")
def gc_env(tmp_path_factory):
    with LocalRegistry(tmp_path_factory.mktemp("gc")) as env:
        lay = env.layout
        base = lay.layer("gc-base", 4096)
        old = lay.tag("old", lay.image([base, lay.layer("gc-old", 3000)], label="old"))
        old_digest = env.push(old, "gc/app:1")
        new = lay.tag("new", lay.image([base, lay.layer("gc-new", 3000)], label="new"))
        new_digest = env.push(new, "gc/app:1")  # the tag moves: the old image is untagged now
        amd = lay.image([base, lay.layer("gc-amd64")], arch="amd64", label="multi")
        arm = lay.image([base, lay.layer("gc-arm64")], arch="arm64", label="multi")
        index_digest = env.push(lay.tag("multi", lay.index([amd, arm])), "gc/multi:1")
        client = DistributionClient(env.registry.address, env.registry.user, env.registry.password)
        size = len(env.skopeo.inspect_raw(f"gc/app@{new_digest}"))
        subject = {"mediaType": OCI_MANIFEST, "digest": new_digest, "size": size}
        signature = client.push_referrer(
            "gc/app", subject, b"a signature of app:1", "application/vnd.example.sig"
        )
        yield (
            env,
            client,
            {"old": old_digest, "new": new_digest, "index": index_digest, "signature": signature},
        )


def _gc(capsys, env, *argv):
    from regvault.cli.main import main

    code = main(["gc", "--format", "json", "--bucket", env.bucket, *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _every_tag_pulls(env, client, tmp_path):
    pulled = []
    for repository in client.catalog():
        for tag in client.tags(repository):
            env.skopeo.pull(
                f"{repository}:{tag}", tmp_path / f"{repository.replace('/', '_')}-{tag}", all_images=True
            )
            client.pull(repository, tag)
            pulled.append(f"{repository}:{tag}")
    return pulled


def test_plan_keeps_index_children_and_the_referrer(gc_env, capsys, cli_env):
    env, _, d = gc_env
    cli_env(env)
    plan = _gc(capsys, env, "--delete-untagged", "--grace-hours", "0")
    assert plan["applied"] is False and plan["run_id"] is None
    digests = {o["digest"] for o in plan["objects"]}
    assert d["old"] in digests  # the untagged image goes
    assert not digests & {d["new"], d["index"], d["signature"]}
    # registry:2's own GC (--delete-untagged) would sweep the index's children (distribution #3004)
    children = [
        c["digest"] for c in json.loads(env.skopeo.inspect_raw(f"gc/multi@{d['index']}"))["manifests"]
    ]
    assert len(children) == 2 and not digests & set(children)


def test_apply_while_pushing_breaks_no_tag_and_undo_brings_the_image_back(gc_env, capsys, cli_env, tmp_path):
    env, client, d = gc_env
    cli_env(env)
    lay = env.layout
    pushed, failed = [], []

    def pushes():  # images on the layer the GC sweeps, pushed while it runs
        for i in range(4):
            image = lay.tag(
                f"race-{i}", lay.image([lay.layer("gc-old", 3000), lay.layer(f"race-{i}")], label=f"r{i}")
            )
            try:
                env.push(image, f"gc/race:{i}")
                pushed.append(i)
            except Exception as exc:  # a push may lose the race and fail: it must not break anything
                failed.append(str(exc)[:200])

    pusher = threading.Thread(target=pushes)
    pusher.start()
    run = _gc(capsys, env, "--delete-untagged", "--grace-hours", "0", "--apply")
    pusher.join()
    assert run["applied"] and run["summary"]["manifests"] >= 1 and pushed, (run["summary"], failed)
    # every tag the registry lists pulls, whole, with both clients; the referrer too, by digest
    pulled = _every_tag_pulls(env, client, tmp_path)
    assert {"gc/app:1", "gc/multi:1"} <= set(pulled) and {f"gc/race:{i}" for i in pushed} <= set(pulled)
    client.pull("gc/app", d["signature"])
    store, layout = S3Store(env.bucket, env.s3), RegistryLayout(env.root)
    report = run_audit(store, layout, AuditRequest(grace=timedelta(0)))
    assert [f for f in report.findings if f.severity == "error"] == []
    # the swept image is gone from the registry, and the undo brings it back
    with pytest.raises(Exception, match="answered 404"):
        client.pull("gc/app", d["old"])
    undo = _gc(capsys, env, "--undo", run["run_id"], "--apply")
    assert undo["restored"]
    client.pull("gc/app", d["old"])
    env.skopeo.pull(f"gc/app@{d['old']}", tmp_path / "old")
    report = run_audit(store, layout, AuditRequest(grace=timedelta(0)))
    assert [f for f in report.findings if f.severity == "error"] == []


def test_usage_on_the_real_registry_adds_up(gc_env, capsys, cli_env):
    from regvault.cli.main import main

    env, _, _ = gc_env
    cli_env(env)
    assert main(["usage", "--format", "json", "--bucket", env.bucket]) == 0
    doc = json.loads(capsys.readouterr().out)
    current = noncurrent = 0
    for page in env.s3.get_paginator("list_object_versions").paginate(Bucket=env.bucket):
        for v in page.get("Versions", []):
            if not v["Key"].startswith(RegistryLayout(env.root).prefix):
                continue  # regvault's own lease and run records
            current += v["Size"] if v["IsLatest"] else 0
            noncurrent += 0 if v["IsLatest"] else v["Size"]
    t = doc["totals"]
    assert (t["stored_current_bytes"], t["stored_noncurrent_bytes"]) == (current, noncurrent)
    assert t["upload_scratch_bytes"] > 0  # every skopeo push left its upload scratch
    rows = doc["repositories"]
    assert {"gc/app", "gc/multi"} <= set(rows)
    assert abs(sum(r["unique_bytes"] + r["shared_bytes"] for r in rows.values()) - t["live_bytes"]) <= len(
        rows
    )
    # the shared base layer is apportioned: app and multi both use it
    assert rows["gc/app"]["shared_bytes"] > 0 and rows["gc/multi"]["shared_bytes"] > 0
