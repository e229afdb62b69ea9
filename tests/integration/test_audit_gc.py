"""The registry's own garbage-collect, and what the audit says afterwards."""

import json

import pytest

from harness.local import LocalRegistry
from harness.processes import HarnessError
from regvault.cli.main import main


def audit(capsys):
    code = main(["audit", "--format", "json"])
    out, err = capsys.readouterr()
    assert code in (0, 1), err
    return code, json.loads(out)


@pytest.fixture(scope="module")
def gc_registry(scratch):
    env = scratch
    lay = env.layout
    base = lay.layer("gc-base")
    v1 = env.push(lay.tag("gc-v1", lay.image([base, lay.layer("gc-v1")])), "gc/app:1")
    v2 = env.push(lay.tag("gc-v2", lay.image([base, lay.layer("gc-v2")])), "gc/app:1")
    amd = lay.image([base, lay.layer("gc-amd")], arch="amd64")
    arm = lay.image([base, lay.layer("gc-arm")], arch="arm64")
    index = lay.tag("gc-index", lay.index([amd, arm]))
    env.push(index, "gc/multi:1")
    return env, v1, v2, index


def test_gc_without_delete_untagged_keeps_everything_pullable(gc_registry, capsys, cli_env):
    env, v1, v2, _ = gc_registry
    cli_env(env)
    env.registry.garbage_collect()
    env.registry.restart()
    code, doc = audit(capsys)
    assert code == 0
    app = next(t for t in doc["tags"] if t["repository"] == "gc/app")
    assert [(h["digest"], h["recoverable"]) for h in app["history"]] == [(v2, True), (v1, True)]


def test_gc_delete_untagged_sweeps_index_children_and_audit_names_it(gc_registry, capsys, cli_env, tmp_path):
    # distribution #3004/#4461: --delete-untagged treats an index's children as untagged
    env, v1, v2, index = gc_registry
    cli_env(env)
    env.registry.garbage_collect(delete_untagged=True)
    env.registry.restart()
    code, doc = audit(capsys)
    assert code == 1
    multi = [f for f in doc["findings"] if f["repository"] == "gc/multi"]
    children = {c["digest"] for c in index.manifests[0]["manifests"]}
    assert {f["digest"] for f in multi if f["code"] == "REVISION_LINK_MISSING"} == children
    missing_blobs = {f["digest"] for f in multi if f["code"] == "BLOB_MISSING"}
    child_layers = {layer["digest"] for m in index.manifests[1:] for layer in m["layers"]}
    assert missing_blobs and missing_blobs <= child_layers | {
        m["config"]["digest"] for m in index.manifests[1:]
    }
    assert all(f["recoverable"] is True for f in multi)
    # and the registry really fails the pull, as the audit said
    with pytest.raises(HarnessError, match=r"blob unknown|manifest unknown|not found|404"):
        env.skopeo.pull("gc/multi:1", tmp_path / "pulled", all_images=True)
    # the overwritten image was swept too, but S3 versions still hold all of it
    app = next(t for t in doc["tags"] if t["repository"] == "gc/app")
    assert [(h["digest"], h["recoverable"]) for h in app["history"]] == [(v2, True), (v1, True)]
    assert not [f for f in doc["findings"] if f["repository"] == "gc/app" and f["severity"] == "error"]


def test_unversioned_bucket_is_a_finding_and_the_audit_goes_on(tmp_path, capsys, monkeypatch):
    with LocalRegistry(tmp_path, versioned=False) as env:
        lay = env.layout
        env.push(lay.tag("u", lay.image([lay.layer("unversioned")])), "plain/app:1")
        for name, value in env.client_env().items():
            monkeypatch.setenv(name, value)
        code, doc = audit(capsys)
        assert code == 1
        assert [f["code"] for f in doc["findings"] if f["severity"] == "error"] == ["BUCKET_VERSIONING_OFF"]
        assert doc["summary"]["tags"] == 1


def test_no_registry_and_no_bucket_are_one_line_exit_2(tmp_path, capsys, monkeypatch):
    with LocalRegistry(tmp_path) as env:
        for name, value in env.client_env().items():
            monkeypatch.setenv(name, value)
        assert main(["audit"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("regvault: error: no registry under root '(empty)'") and err.count("\n") == 1
        assert main(["audit", "--bucket", "no-such-bucket"]) == 2
        assert "does not exist" in capsys.readouterr().err
