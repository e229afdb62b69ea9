"""Tag history, deletes and pagination as the real registry records them in object versions."""

import math

import pytest

from harness.local import LocalRegistry
from regvault.storage.layout import RegistryLayout

from .support import all_versions, ls_json, registry_request


@pytest.fixture(scope="module")
def history(scratch):
    env = scratch
    lay = env.layout
    base = lay.layer("hist-base")
    digests = []
    for label in ("v1", "v2", "v3"):  # three pushes over one tag
        image = lay.tag(f"hist-{label}", lay.image([base, lay.layer(f"hist-{label}")], label=label))
        digests.append(env.push(image, "hist/app:1"))
    keep = lay.tag("hist-keep", lay.image([base, lay.layer("hist-keep")], label="keep"))
    env.push(keep, "hist/app:keep")
    env.push(keep, "hist/gone:1")
    return env, digests


def _tag(doc, repository, tag):
    repo = next(r for r in doc["repositories"] if r["name"] == repository)
    return repo, next(t for t in repo["tags"] if t["tag"] == tag)


def test_overwrites_show_as_history_newest_first(history, capsys, cli_env):
    env, (v1, v2, v3) = history
    cli_env(env)
    doc = ls_json(capsys, "hist/app")
    _, tag = _tag(doc, "hist/app", "1")
    assert tag["state"] == "live" and tag["digest"] == v3
    assert tag["history"] == [v3, v2, v1] and tag["earlier_digests"] == 2
    # links resolved from ETags: the only GETs are the two live manifests (for their media type)
    live_manifests = 2
    assert (
        doc["summary"]["s3_requests"] == math.ceil(doc["summary"]["object_versions"] / 1000) + live_manifests
    )


def test_manifest_delete_shows_tag_deleted_and_registry_stops_listing_it(history, capsys, cli_env):
    env, (v1, v2, v3) = history
    cli_env(env)
    # When the current image of hist/app:1 is deleted through the registry API
    assert registry_request(env, "DELETE", f"/v2/hist/app/manifests/{v3}") == 202
    # Then S3 holds delete markers, the registry no longer lists the tag (emulator fix 1 at work)
    assert env.skopeo.list_tags("hist/app") == ["keep"]
    doc = ls_json(capsys, "hist/app")
    _, tag = _tag(doc, "hist/app", "1")
    assert tag["state"] == "deleted" and tag["digest"] == v3
    assert tag["history"] == [v3, v2, v1]
    _, keep = _tag(doc, "hist/app", "keep")
    assert keep["state"] == "live" and keep["earlier_digests"] == 0


def test_repository_deleted_at_s3_level_is_marked_deleted(history, capsys, cli_env):
    env, _ = history
    cli_env(env)
    prefix = RegistryLayout(env.root).repository_prefix("hist/gone")
    for v in all_versions(env):
        if v["Key"].startswith(prefix) and v["IsLatest"] and not v["DeleteMarker"]:
            env.s3.delete_object(Bucket=env.bucket, Key=v["Key"])
    doc = ls_json(capsys)
    repo, tag = _tag(doc, "hist/gone", "1")
    assert repo["state"] == "deleted" and tag["state"] == "deleted"
    assert env.skopeo.list_tags("hist/app") == ["keep"]


def test_small_pages_give_the_same_listing_at_one_request_per_page(history, capsys, cli_env):
    env, _ = history
    cli_env(env)
    full = ls_json(capsys)
    paged = ls_json(capsys, "--page-size", "7")
    assert paged["repositories"] == full["repositories"]
    versions = full["summary"]["object_versions"]
    gets = full["summary"]["s3_requests"] - math.ceil(versions / 1000)
    assert paged["summary"]["s3_requests"] == math.ceil(versions / 7) + gets


def test_registry_under_a_root_directory(tmp_path, capsys, monkeypatch):
    with LocalRegistry(tmp_path, root="/deep/root") as env:
        image = env.layout.tag("r", env.layout.image([env.layout.layer("root-layer")]))
        digest = env.push(image, "rooted/app:1")
        keys = {v["Key"] for v in all_versions(env)}
        assert keys and all(k.startswith("deep/root/docker/registry/v2/") for k in keys)
        for name, value in env.client_env().items():
            monkeypatch.setenv(name, value)
        for root in ("deep/root", "/deep/root", "/deep/root/"):
            doc = ls_json(capsys, "--root", root)
            assert _tag(doc, "rooted/app", "1")[1]["digest"] == digest
