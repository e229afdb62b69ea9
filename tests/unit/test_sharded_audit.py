"""A sharded audit (key ranges listed in parallel) writes the same report as one walk."""

import copy
from datetime import timedelta

import pytest
from moto.s3 import models as s3_models

from harness import moto_patches
from harness.generator import synthetic
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.errors import InvalidInput
from regvault.reports.render import to_markdown
from regvault.storage.layout import BlobData, LayerLink, RegistryLayout, TagCurrentLink

from .builders import replay

VARIABLE = ("started_at", "finished_at")
COSTS = ("duration_s", "s3_requests")
# what was listed differs when upload folders are read current-only (the report says how many)
LISTED = ("object_versions", "delete_markers", "upload_folders_not_listed")


@pytest.fixture
def generated(s3, bucket, monkeypatch):
    """A generated registry history (pushes, overwrites, indexes, deletes, garbage collections) with
    incidents (a malformed tag link, a lost layer link, a lost blob) and junk keys on and around range
    bounds."""
    # S3's KeyMarker semantics (stock moto 5 skips a key after a marker that is not a key itself)
    monkeypatch.setattr(s3_models.S3Backend, "list_object_versions", moto_patches.list_object_versions)
    sim, _ = synthetic(1200, seed=11)
    replay(s3, bucket, sim.ops)
    layout = RegistryLayout("")
    keys = sorted(_keys(s3, bucket))
    # incidents (written before the first listing: the patched listing caches key names): a live
    # tag's link malformed, a layer link and a blob gone, junk keys on and around range bounds
    tags = [k for k in keys if isinstance(layout.parse(k), TagCurrentLink)]
    s3.put_object(Bucket=bucket, Key=tags[len(tags) // 2], Body=b"sha256:zz")
    layers = [k for k in keys if isinstance(layout.parse(k), LayerLink)]
    s3.delete_object(Bucket=bucket, Key=layers[len(layers) // 2])
    blobs = [k for k in keys if isinstance(layout.parse(k), BlobData)]
    s3.delete_object(Bucket=bucket, Key=blobs[len(blobs) // 3])
    for key in ("docker/registry/v2/aaa", "docker/registry/v2/blobs/sha256/8", "docker/registry/v2/zzz"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"?")
    # an abandoned upload (live scratch keys) in the repository with the most upload scratch
    folders = [
        layout.scratch_folder(m["Key"])
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for m in page.get("DeleteMarkers", [])
    ]
    busiest = max({f for f in folders if f}, key=folders.count)
    for name in ("data", "startedat"):
        s3.put_object(Bucket=bucket, Key=f"{busiest}abandoned-1/{name}", Body=b"?")
    store = S3Store(bucket, s3)
    return store, layout


def _keys(s3, bucket):
    return [
        o["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page["Contents"]
    ]


def _comparable(report):
    doc = copy.deepcopy(report.as_dict())
    for name in VARIABLE:
        doc.pop(name)
    for name in COSTS + LISTED:
        doc["summary"].pop(name)
    for name in ("object_versions", "upload_folders_not_listed"):  # what the listing read, as above
        doc.get("usage", {}).get("totals", {}).pop(name, None)
    return doc


def test_the_sharded_report_is_the_single_walks(generated):
    store, layout = generated
    # the reference: one walk that lists every version, upload scratch included
    one = run_audit(store, layout, AuditRequest(grace=timedelta(0), page_size=100, upload_versions=True))
    codes = {f.code for f in one.findings}
    # the registry has real incidents and history, so the comparison says something
    assert {"LINK_MALFORMED", "UNKNOWN_KEY", "BLOB_MISSING", "STALE_UPLOAD"} <= codes and len(codes) >= 6, (
        codes
    )
    assert sum(len(t.history) for t in one.tags) > len(one.tags)
    assert one.summary["upload_folders_not_listed"] == 0
    for shards in (1, 16, 256):
        for upload_versions in (False, True):
            sharded = run_audit(
                store,
                layout,
                AuditRequest(
                    grace=timedelta(0),
                    page_size=100,
                    shards=shards,
                    workers=8,
                    upload_versions=upload_versions,
                ),
            )
            mine, reference = _comparable(sharded), _comparable(one)
            if not upload_versions:  # the noncurrent scratch of folders not listed is not counted
                skipped = sharded.usage["totals"]["upload_folders_not_listed"]
                assert (
                    skipped > 0
                    and mine["usage"]["totals"]["upload_scratch_bytes"]
                    < (reference["usage"]["totals"]["upload_scratch_bytes"])
                )
                for doc in (mine, reference):
                    for name in ("stored_noncurrent_bytes", "upload_scratch_bytes"):
                        doc["usage"]["totals"].pop(name)
            assert mine == reference, (shards, upload_versions)
            if upload_versions and shards > 1:
                assert sharded.summary["s3_requests"] > one.summary["s3_requests"]  # it did walk in ranges


def test_upload_scratch_is_read_current_only_and_the_report_says_so(generated):
    store, layout = generated
    full = run_audit(store, layout, AuditRequest(grace=timedelta(0), page_size=100, upload_versions=True))
    lean = run_audit(store, layout, AuditRequest(grace=timedelta(0), page_size=100))
    f, s = full.summary, lean.summary
    # most of a registry's versions are upload scratch: far fewer are listed (each folder skipped costs
    # a jump and a live-key listing, which pays off once a folder spans more than two pages)
    assert s["object_versions"] < 0.6 * f["object_versions"], (s["object_versions"], f["object_versions"])
    assert s["upload_folders_not_listed"] >= 3
    assert f"versions of {s['upload_folders_not_listed']} upload folder(s) were not listed" in to_markdown(
        lean
    )
    # the abandoned upload is found either way
    assert [x.key for x in lean.findings if x.code == "STALE_UPLOAD"] == [
        x.key for x in full.findings if x.code == "STALE_UPLOAD"
    ]


def test_shards_must_be_1_16_or_256():
    with pytest.raises(InvalidInput, match="shards must be 1, 16 or 256"):
        AuditRequest(shards=8)
