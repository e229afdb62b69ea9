"""Findings grouped by image with the command that repairs each, and `regvault repair`: one plan for every
recoverable broken image, copy-forward only, unrecoverable ones listed and skipped."""

import json

import pytest

from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.cli.main import main
from regvault.errors import InvalidInput
from regvault.repair.usecase import RepairRequest, repair_registry
from regvault.reports.render import to_html, to_markdown
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, LayerLink, RegistryLayout, RevisionLink, TagCurrentLink

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")


def _versions(s3, bucket):
    out = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out |= {(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])}
    return out


@pytest.fixture
def broken(s3, bucket):
    """app:v1 lost a layer and its _layers link (delete markers: recoverable); api:2.0 was deleted
    (its tag and revision link delete-marked); lost:1 lost its config for good (every version gone)."""
    w = RegistryWriter(s3, bucket)
    app = push_image(w, "app", "v1", "app")
    push_image(w, "app", "v2", "fine")
    layer = Digest.of(b"layer-app")
    w.delete(BlobData(layer))
    w.delete(LayerLink("app", layer))
    api = push_image(w, "api", "2.0", "api")
    w.delete(TagCurrentLink("api", "2.0"))
    w.delete(RevisionLink("api", api))
    lost = push_image(w, "lost", "1", "lost")
    key = LAYOUT.key(BlobData(Digest.of(b"cfg-lost")))
    for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
    store = S3Store(bucket, s3)
    return store, {"app": app, "api": api, "lost": lost, "layer": layer}


def test_the_report_groups_errors_by_image_with_the_command_that_repairs_it(broken):
    store, d = broken
    report = run_audit(store, LAYOUT, AuditRequest(usage=False))
    groups = {f"{g.repository}:{g.tag}": g for g in report.images}
    assert set(groups) == {"app:v1", "api:2.0", "lost:1"}  # app:v2 is whole: not listed
    app = groups["app:v1"]
    assert app.state == "live" and app.digest == str(d["app"]) and app.recoverable
    assert {m["code"] for m in app.missing} == {"BLOB_MISSING", "LAYER_LINK_MISSING"}
    assert app.command == f"regvault restore app:v1 --to {d['app']} --apply"
    api = groups["api:2.0"]
    assert api.state == "deleted" and api.digest == str(d["api"]) and api.recoverable
    assert api.command == f"regvault restore api:2.0 --to {d['api']} --apply"
    assert not groups["lost:1"].recoverable and groups["lost:1"].command is None
    # every error of a live tag is in a group; JSON keeps the flat findings and adds the groups
    errors = [f for f in report.findings if f.severity == "error"]
    assert all(any(f in g.findings for g in groups.values()) for f in errors)
    doc = report.as_dict()
    assert len(doc["findings"]) == len(report.findings)
    assert {(i["repository"], i["tag"], i["recoverable"]) for i in doc["images"]} == {
        ("app", "v1", True),
        ("api", "2.0", True),
        ("lost", "1", False),
    }
    markdown = to_markdown(report)
    section = markdown.split("## Broken and deleted images: what to do")[1].split("## Findings")[0]
    assert f"`regvault restore app:v1 --to {d['app']} --apply`" in section
    assert "| lost:1 →" in section and "not from S3 versions" in section
    assert "Broken and deleted images" in to_html(report)


def test_repair_plans_without_writing_then_repairs_everything_recoverable(broken, s3, bucket):
    store, d = broken
    before = _versions(s3, bucket)
    # the plan: app:v1 in place; lost:1 cannot be; api:2.0 only with --include-deleted
    plan = repair_registry(store, LAYOUT, RepairRequest())
    assert _versions(s3, bucket) == before  # nothing written
    status = {f"{i.group.repository}:{i.group.tag}": i.status for i in plan.items}
    assert status == {"app:v1": "planned", "lost:1": "unrecoverable"}
    assert plan.exit_code == 1 and plan.plan is not None
    assert {n.key for n in plan.plan.operations} == {
        LAYOUT.key(BlobData(d["layer"])),
        LAYOUT.key(LayerLink("app", d["layer"])),
    }
    # applied: only copies forward; every earlier version is still there
    done = repair_registry(store, LAYOUT, RepairRequest(apply=True))
    assert done.applied and done.copied == 2 and before <= _versions(s3, bucket)
    after = run_audit(store, LAYOUT, AuditRequest(usage=False))
    left = [f for f in after.findings if f.severity == "error"]
    assert left and all(f.recoverable is not True and f.repository == "lost" for f in left)
    # running it again finds nothing more to do (resumable, idempotent)
    again = repair_registry(store, LAYOUT, RepairRequest(apply=True))
    assert again.copied == 0 and [i.status for i in again.items] == ["unrecoverable"]


def test_include_deleted_brings_a_deleted_tag_back_as_it_last_was(broken, s3, bucket):
    store, d = broken
    done = repair_registry(store, LAYOUT, RepairRequest("api", include_deleted=True, apply=True))
    assert [(i.group.tag, i.status) for i in done.items] == [("2.0", "repaired")]
    report = run_audit(store, LAYOUT, AuditRequest(usage=False))
    tag = next(t for t in report.tags if (t.repository, t.tag) == ("api", "2.0"))
    assert not tag.deleted and tag.current == str(d["api"])
    # the scope held: app:v1 is still broken (it was not in "api")
    assert any(g.repository == "app" for g in report.images)


def test_the_repair_command(broken, s3, bucket, capsys):
    before = _versions(s3, bucket)
    assert main(["repair", "--bucket", bucket]) == 1  # lost:1 cannot be repaired
    out = capsys.readouterr().out
    assert "would repair app:v1" in out and "cannot repair lost:1" in out and "nothing written" in out
    assert _versions(s3, bucket) == before
    assert main(["repair", "app:v1", "--apply", "--format", "json", "--bucket", bucket]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["applied"] and doc["summary"]["copied"] == 2 and doc["images"][0]["status"] == "repaired"
    # bad input: one line on stderr, exit 2, nothing written
    now = _versions(s3, bucket)
    for argv in (["repair", "Bad Name"], ["repair", "app@sha256:" + "0" * 64], ["repair", "nope", "--apply"]):
        assert main([*argv, "--bucket", bucket]) == 2, argv
        assert capsys.readouterr().err.count("\n") == 1
    assert _versions(s3, bucket) == now
    with pytest.raises(InvalidInput):
        RepairRequest(None, "v1")
