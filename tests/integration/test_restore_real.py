"""Restore proven with the real registry and a real client: skopeo inspects and pulls what came back."""

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from harness.processes import HarnessError
from regvault.cli.main import main
from regvault.storage.layout import RegistryLayout

from .support import all_versions


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def restore_json(capsys, *argv):
    code, out, err = run(capsys, "restore", *argv, "--format", "json")
    return code, json.loads(out) if out else None, err


def versions(env):
    return {(v["Key"], v["VersionId"]) for v in all_versions(env)}


def served_digest(env, reference):
    return "sha256:" + hashlib.sha256(env.skopeo.inspect_raw(reference)).hexdigest()


@pytest.fixture(scope="module")
def incident(scratch):
    """Images pushed, overwritten, a repository deleted, then garbage-collect --delete-untagged."""
    env = scratch
    lay = env.layout
    base = lay.layer("rs-base")
    old = env.push(lay.tag("rs-old", lay.image([base, lay.layer("rs-old", 300_000)])), "rs/app:1.4")
    amd = lay.image([base, lay.layer("rs-amd")], arch="amd64")
    arm = lay.image([base, lay.layer("rs-arm")], arch="arm64")
    old_index = env.push(lay.tag("rs-idx", lay.index([amd, arm])), "rs/multi:latest")
    gone = {
        "1": env.push(lay.tag("rs-gone-1", lay.image([base, lay.layer("rs-gone-1")])), "rs/gone:1"),
        "2": env.push(lay.tag("rs-gone-2", lay.image([lay.layer("rs-gone-2")])), "rs/gone:2"),
    }
    time.sleep(1.1)  # S3 times have one-second resolution
    before_delete = datetime.now(UTC)
    time.sleep(1.1)
    new = env.push(lay.tag("rs-new", lay.image([base, lay.layer("rs-new")])), "rs/app:1.4")
    amd2 = lay.image([base, lay.layer("rs-amd2")], arch="amd64")
    arm2 = lay.image([base, lay.layer("rs-arm2")], arch="arm64")
    new_index = env.push(lay.tag("rs-idx2", lay.index([amd2, arm2])), "rs/multi:latest")
    # the repository is deleted at S3 level, as an operator's `aws s3 rm --recursive` would
    prefix = RegistryLayout(env.root).repository_prefix("rs/gone")
    for v in all_versions(env):
        if v["Key"].startswith(prefix) and v["IsLatest"] and not v["DeleteMarker"]:
            env.s3.delete_object(Bucket=env.bucket, Key=v["Key"])
    env.registry.garbage_collect(delete_untagged=True)
    env.registry.restart()
    return env, {
        "old": old,
        "new": new,
        "old_index": old_index,
        "new_index": new_index,
        "gone": gone,
        "before_delete": before_delete,
    }


def test_restore_previous_single_arch_after_gc_pulls_the_old_image(incident, capsys, cli_env, tmp_path):
    env, d = incident
    cli_env(env)
    assert served_digest(env, "rs/app:1.4") == d["new"]
    before = versions(env)
    # plan: nothing written
    code, plan, _ = restore_json(capsys, "rs/app:1.4", "--previous")
    assert code == 0 and plan["restorable"] and not plan["applied"]
    assert plan["targets"][0]["digest"] == d["old"] and plan["targets"][0]["current"] == d["new"]
    phases = [op["phase"] for op in plan["operations"]]
    assert phases[-1] == "tag-current" and phases.index("blob") < phases.index("manifest") < phases.index(
        "revision-link"
    )
    assert versions(env) == before
    # apply
    code, result, _ = restore_json(capsys, "rs/app:1.4", "--previous", "--apply")
    assert code == 0 and result["copied"] == len(plan["operations"])
    assert before <= versions(env)  # no version disappeared
    assert served_digest(env, "rs/app:1.4") == d["old"]
    env.skopeo.pull("rs/app:1.4", tmp_path / "pulled")  # skopeo verifies every blob's digest
    # the audit of that tag is clean, and running the restore again changes nothing
    code, out, _ = run(capsys, "audit", "--format", "json")
    report = json.loads(out)
    assert not [f for f in report["findings"] if f["repository"] == "rs/app" and f["severity"] == "error"]
    code, again, _ = restore_json(capsys, "rs/app:1.4", "--to", d["old"], "--apply")
    assert code == 0 and again["operations"] == [] and again["copied"] == 0


def test_restore_previous_multi_arch_index_pulls_every_platform(incident, capsys, cli_env, tmp_path):
    env, d = incident
    cli_env(env)
    before = versions(env)
    code, result, err = restore_json(capsys, "rs/multi:latest", "--previous", "--apply")
    assert code == 0, err
    assert result["targets"][0]["digest"] == d["old_index"]
    assert before <= versions(env)
    assert served_digest(env, "rs/multi:latest") == d["old_index"]
    env.skopeo.pull("rs/multi:latest", tmp_path / "pulled", all_images=True)


def test_restore_whole_deleted_repository_at_a_time_before_deletion(incident, capsys, cli_env, tmp_path):
    env, d = incident
    cli_env(env)
    with pytest.raises(HarnessError, match="404"):  # the registry no longer knows the repository
        env.skopeo.list_tags("rs/gone")
    before = versions(env)
    at = d["before_delete"].isoformat()
    code, result, err = restore_json(capsys, "rs/gone", "--at", at, "--apply")
    assert code == 0, err
    assert sorted((t["tag"], t["digest"]) for t in result["targets"]) == sorted(d["gone"].items())
    assert before <= versions(env)
    assert sorted(env.skopeo.list_tags("rs/gone")) == ["1", "2"]
    for tag, digest in d["gone"].items():
        assert served_digest(env, f"rs/gone:{tag}") == digest
        env.skopeo.pull(f"rs/gone:{tag}", tmp_path / f"pulled-{tag}")


def test_push_after_plan_stops_before_moving_the_tag(incident, capsys, cli_env):
    from regvault.aws.clients import s3_client
    from regvault.aws.s3 import S3Store
    from regvault.restore.apply import TagMoved, apply_plan
    from regvault.restore.planner import plan_restore

    env, d = incident
    cli_env(env)
    store = S3Store(env.bucket, s3_client(endpoint_url=env.emulator.endpoint_url))
    layout = RegistryLayout(env.root)
    plan, _ = plan_restore(store, layout, "rs/app", "1.4", to=d["new"])
    # someone pushes to the tag between plan and apply
    lay = env.layout
    pushed = env.push(lay.tag("rs-race", lay.image([lay.layer("rs-race")])), "rs/app:1.4")
    with pytest.raises(TagMoved, match="changed after the plan was made"):
        apply_plan(store, plan)
    assert served_digest(env, "rs/app:1.4") == pushed  # the push was not overwritten
    apply_plan(store, plan, force=True)
    assert served_digest(env, "rs/app:1.4") == d["new"]


def test_not_restorable_writes_nothing_and_names_what_is_gone(incident, capsys, cli_env):
    env, d = incident
    cli_env(env)
    # Given every version of one layer of the image purged (as an expired lifecycle would)
    lay_key = next(
        v["Key"]
        for v in all_versions(env)
        if v["Key"].endswith("/data")
        and "/blobs/" in v["Key"]
        and v["Size"] > 250_000
        and v["Size"] < 400_000
    )
    for v in all_versions(env):
        if v["Key"] == lay_key:
            env.s3.delete_object(Bucket=env.bucket, Key=lay_key, VersionId=v["VersionId"])
    before = versions(env)
    code, result, err = restore_json(capsys, "rs/app:1.4", "--to", d["old"], "--apply")
    assert code == 1
    assert [m["key"] for m in result["missing"]] == [RegistryLayout(env.root).relative(lay_key)]
    assert "not restorable" in err and err.count("\n") == 1
    assert versions(env) == before and result["copied"] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rs/app:1.4", "--at", "2026-11-20T10:00:00"], "has no UTC offset"),
        (["rs/app:1.4", "--at", "yesterday"], "invalid time"),
        (["rs/app:1.4", "--at", "2001-01-01T00:00:00Z"], "did not exist at"),
        (["rs/app:1.4", "--at", (datetime.now(UTC) + timedelta(days=1)).isoformat()], "in the future"),
        (["rs/app:1.4", "--previous", "99"], "is beyond that"),
        (["rs/app:1.4", "--to", "sha256:1234"], "invalid digest"),
        (["Rs/App:1.4", "--previous"], "invalid repository name"),
        (["rs/app:-bad", "--previous"], "invalid tag"),
        (["rs/app", "--previous"], "needs --at TIME"),
        (["rs/app@sha256:" + "a" * 64, "--previous"], "not a digest reference"),
        (["rs/nothing:1", "--previous"], "no repository 'rs/nothing'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(incident, capsys, cli_env, argv, message):
    env, _ = incident
    cli_env(env)
    before = versions(env)
    code, out, err = run(capsys, "restore", *argv, "--apply")
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1
    assert versions(env) == before


def test_history_lists_every_image_with_restorability(incident, capsys, cli_env):
    env, d = incident
    cli_env(env)
    code, out, _ = run(capsys, "history", "rs/multi", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    entries = doc["tags"][0]["history"]
    assert {e["digest"] for e in entries} == {d["old_index"], d["new_index"]}
    assert all(e["recoverable"] for e in entries)
    assert all(e["media_type"] == "application/vnd.oci.image.index.v1+json" for e in entries)
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)


def test_history_markdown_names_each_image(incident, capsys, cli_env):
    env, d = incident
    cli_env(env)
    code, out, _ = run(capsys, "history", "rs/app:1.4", "--format", "markdown")
    assert code == 0 and out.startswith("# Tag history:")
    assert f"`{d['old']}`" in out and f"`{d['new']}`" in out
