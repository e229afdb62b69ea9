"""The GC applied: delete markers only, a run record, the lease, racing writes copied back, and undo."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from regvault.audit.run import AuditRequest, run_audit
from regvault.garbage.apply import apply_gc, read_run
from regvault.garbage.usecase import GcRequest, collect_garbage, plan_gc, undo_garbage
from regvault.storage.layout import RevisionLink, TagCurrentLink, TagIndexLink
from regvault.storage.lease import Lease, LeaseHeld, break_stale, read_lease, take_lease

from . import test_gc_plan
from .builders import RegistryWriter
from .test_gc_plan import LATER

registry = test_gc_plan.registry  # the fixture

REQUEST = GcRequest(delete_untagged=True, now=LATER)


def _versions(s3, bucket):
    out = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out.setdefault(v["Key"], []).append(("data", v["VersionId"], v["IsLatest"]))
        for m in page.get("DeleteMarkers", []):
            out.setdefault(m["Key"], []).append(("marker", m["VersionId"], m["IsLatest"]))
    return out


def _latest(versions, key):
    return next(kind for kind, _, latest in versions[key] if latest)


def _errors(store, layout):
    report = run_audit(store, layout, AuditRequest(grace=timedelta(0)))
    return sorted((f.code, f.key or f.digest) for f in report.findings if f.severity == "error")


def test_apply_writes_delete_markers_only_keeps_a_run_record_and_undo_brings_everything_back(
    registry, s3, bucket
):
    store, layout, _ = registry
    deletes = []
    s3.meta.events.register(
        "before-parameter-build.s3.DeleteObject", lambda params, **_: deletes.append(dict(params))
    )
    before = _versions(s3, bucket)
    errors_before = _errors(store, layout)
    result = collect_garbage(store, layout, REQUEST, apply=True)
    assert result.applied and result.run_id and result.resurrected == []
    after = _versions(s3, bucket)
    swept = {s.key for s in result.plan.sweeps}
    assert len(swept) == 5  # the overwritten image's manifest, config and two links; the orphan
    for key in swept:
        assert _latest(after, key) == "marker"
        # every version the key had is still there, under one new delete marker
        assert set(before[key]) - {(k, v, True) for k, v, _ in before[key]} <= set(after[key])
        assert len(after[key]) == len(before[key]) + 1
    # DeleteObject without a version id, and only on swept keys and the lease
    assert all("VersionId" not in p for p in deletes)
    assert {p["Key"] for p in deletes} == swept | {layout.lease_key}
    # the GC broke nothing: the audit finds the errors it found before, no more
    assert _errors(store, layout) == errors_before
    run = read_run(store, layout, result.run_id)
    assert run.status == "done" and {i["key"] for i in run.swept} == swept
    # undo: a plan first (writes nothing), then every swept version copied forward
    planned = undo_garbage(store, layout, result.run_id, apply=False)
    assert planned["summary"] == {"restore": 5, "restored": 0, "changed": 0}
    assert _versions(s3, bucket) == after
    undone = undo_garbage(store, layout, result.run_id, apply=True)
    assert sorted(undone["restored"]) == sorted(swept)
    final = _versions(s3, bucket)
    for key in swept:
        assert _latest(final, key) == "data"
    # the next gc finds the same garbage again: nothing was lost
    again = plan_gc(store, layout, REQUEST).plan
    assert {s.key for s in again.sweeps} == swept
    assert undo_garbage(store, layout, result.run_id, apply=False)["summary"]["restored"] == 5


def test_a_racing_write_that_needs_a_swept_object_gets_it_back(registry, s3, bucket):
    store, layout, d = registry
    outcome = plan_gc(store, layout, REQUEST)
    w = RegistryWriter(s3, bucket)

    def remark():
        # while the GC swept, a push tagged the overwritten image again (the registry rewrites its links)
        for entity in (
            RevisionLink("app", d["old"]),
            TagIndexLink("app", "again", d["old"]),
            TagCurrentLink("app", "again"),
        ):
            w.put(entity, d["old"].link_body())
        return plan_gc(
            store, layout, GcRequest(delete_untagged=True, now=datetime.now(UTC) + timedelta(hours=3))
        ).marked

    run = apply_gc(store, layout, outcome.plan, "gc-20261130T000000Z-abcdef", {}, remark)
    manifest_key = layout.key(__import__("regvault.storage.layout", fromlist=["BlobData"]).BlobData(d["old"]))
    # the manifest blob and its config came back; the links the push rewrote were left alone
    assert manifest_key in run.resurrected
    assert layout.key(RevisionLink("app", d["old"])) not in run.resurrected
    report = run_audit(store, layout, AuditRequest(grace=timedelta(0)))
    again = next(t for t in report.tags if t.repository == "app" and t.tag == "again")
    assert not [f for f in report.findings if f.tag == "again" and f.severity == "error"], again


def test_one_writer_at_a_time_and_a_stale_lease_is_reported_not_taken(registry, s3, bucket):
    store, layout, _ = registry
    now = datetime.now(UTC)
    held = take_lease(store, layout, "gc-20261130T000000Z-aaaaaa", "gc", now)
    before = _versions(s3, bucket)
    with pytest.raises(LeaseHeld, match="holds the lease until"):
        collect_garbage(store, layout, REQUEST, apply=True)
    assert _versions(s3, bucket) == before  # nothing written
    with pytest.raises(LeaseHeld, match="live lease"):
        break_stale(store, layout, now)
    # an hour past its expiry: reported as stale, still not taken
    later = held.expires + timedelta(hours=1)
    with pytest.raises(LeaseHeld, match="stale lease of gc run gc-20261130T000000Z-aaaaaa"):
        take_lease(store, layout, "gc-20261130T010000Z-bbbbbb", "gc", later)
    assert break_stale(store, layout, later) == Lease(held.holder, "gc", held.expires)
    assert take_lease(store, layout, "gc-20261130T010000Z-bbbbbb", "gc", later).holder.endswith("bbbbbb")


@pytest.mark.parametrize("run_id", ["", "gc-1", "../x", "gc-20261130T000000Z-ABCDEF"])
def test_bad_run_ids_are_refused(registry, run_id):
    store, layout, _ = registry
    with pytest.raises(Exception, match="gc run ids look like"):
        undo_garbage(store, layout, run_id, apply=False)


def test_an_unknown_run_is_a_clear_error(registry):
    store, layout, _ = registry
    with pytest.raises(Exception, match="no gc run 'gc-20261130T000000Z-abcdef'"):
        undo_garbage(store, layout, "gc-20261130T000000Z-abcdef", apply=False)


def test_the_gc_command_plans_applies_and_undoes(registry, capsys):
    from regvault.cli.main import main

    base = ["--bucket", "reg", "--grace-hours", "0"]
    # a plan: the table names the repositories, and nothing is written
    assert main(["gc", "--delete-untagged", *base]) == 0
    out = capsys.readouterr().out
    assert "plan only: would sweep 2 blob(s), 1 manifest(s), 2 link(s)" in out and "app" in out
    # the sweep, as JSON: the documented fields
    assert main(["gc", "--delete-untagged", "--apply", "--format", "json", *base]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["applied"] is True and doc["run_id"].startswith("gc-")
    assert set(doc) >= {"run_id", "applied", "summary", "repositories", "objects"}
    assert {"blobs", "manifests", "links", "bytes"} <= set(doc["summary"])
    assert all({"key", "version_id"} <= set(o) for o in doc["objects"])
    # nothing left to sweep; the undo plan, then the undo
    assert main(["gc", "--delete-untagged", *base]) == 0
    assert "nothing to sweep" in capsys.readouterr().out
    assert main(["gc", "--undo", doc["run_id"], "--bucket", "reg"]) == 0
    assert "5 to copy back" in capsys.readouterr().out
    assert main(["gc", "--undo", doc["run_id"], "--apply", "--bucket", "reg"]) == 0
    assert "undone: 5 object version(s) copied back" in capsys.readouterr().out
    # bad input: one line, exit 2
    assert main(["gc", "--grace-hours", "-1", "--bucket", "reg"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["gc", "--undo", "nope", "--bucket", "reg"]) == 2
    assert "gc run ids look like" in capsys.readouterr().err


def test_a_restore_waits_for_a_running_gc(registry):
    from regvault.restore.usecase import RestoreRequest, restore_images

    store, layout, d = registry
    take_lease(store, layout, "gc-20261130T000000Z-cccccc", "gc", datetime.now(UTC))
    request = RestoreRequest("app", "v1", to=str(d["old"]), apply=True)
    with pytest.raises(LeaseHeld, match="gc run gc-20261130T000000Z-cccccc holds the lease until"):
        restore_images(store, layout, request)
    # planning is read-only and still answers
    assert restore_images(store, layout, RestoreRequest("app", "v1", to=str(d["old"]))).applied is False


def test_a_gc_waits_for_a_running_restore_and_the_restore_lets_go(registry, s3, bucket, monkeypatch):
    import regvault.restore.usecase as restore_usecase
    from regvault.restore.usecase import RestoreRequest, restore_images

    store, layout, d = registry
    request = RestoreRequest("app", "v1", to=str(d["old"]), apply=True)
    seen = {}

    def copying(*args, **kwargs):  # while the restore copies: a GC cannot start, nor another restore
        held = read_lease(store, layout)
        seen["holder"] = held.holder if held else None
        with pytest.raises(LeaseHeld, match=r"restore run restore-.* holds the lease"):
            collect_garbage(store, layout, GcRequest(delete_untagged=True), apply=True)
        with pytest.raises(LeaseHeld, match="restore run"):
            restore_images(store, layout, request)
        return original(*args, **kwargs)

    original = restore_usecase.apply_plan
    monkeypatch.setattr(restore_usecase, "apply_plan", copying)
    assert restore_images(store, layout, request).applied
    assert seen["holder"].startswith("restore-")
    assert read_lease(store, layout) is None  # released: the GC may run now
    assert collect_garbage(store, layout, GcRequest(), apply=True).applied

    # a restore that fails half-way lets go of the lease too
    def failing(*args, **kwargs):
        raise RuntimeError("copy failed")

    monkeypatch.setattr(restore_usecase, "apply_plan", failing)
    with pytest.raises(RuntimeError, match="copy failed"):
        restore_images(store, layout, RestoreRequest("app", "v1", to=str(d["new"]), apply=True))
    assert read_lease(store, layout) is None
