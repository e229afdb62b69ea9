from datetime import UTC, datetime, timedelta

import pytest
from moto.s3 import models as s3_models

from harness import moto_patches
from regvault.aws.s3 import S3Store
from regvault.storage.inventory import Inventory, walk, walk_shards
from regvault.storage.layout import BlobData, RegistryLayout, TagCurrentLink
from regvault.storage.store import VersionRecord

from .builders import RegistryWriter, digest_of


@pytest.fixture(params=["stock-moto", "patched-emulator"])
def listing_backend(request, monkeypatch):
    """Run each walk test against moto's own listing and against the emulator's patched one."""
    if request.param == "patched-emulator":
        monkeypatch.setattr(s3_models.S3Backend, "list_object_versions", moto_patches.list_object_versions)
    else:
        request.getfixturevalue("stock_moto_listing")
    return request.param


def _history_bucket(s3, bucket):
    w = RegistryWriter(s3, bucket)
    tag = TagCurrentLink("team/app", "1.0")
    for label in ("a", "b", "c"):  # three pushes over one tag
        w.put(tag, digest_of(label).link_body())
    w.delete(tag)  # then the tag is deleted
    for i in range(5):
        w.put(BlobData(digest_of(f"blob{i}")), f"blob{i}".encode())
    w.delete(BlobData(digest_of("blob2")))
    return w


def _snapshot(inv: Inventory):
    return {
        h.key: [(v.version_id, v.is_delete_marker, v.is_latest, v.size, v.etag) for v in h.versions]
        for h in inv
    }


@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 1000])
def test_walk_pages_split_inside_a_key_give_the_same_inventory(s3, bucket, listing_backend, page_size):
    # Given a key with 4 versions (3 data + delete marker) and blobs, one delete-marked
    w = _history_bucket(s3, bucket)
    store = S3Store(bucket, s3)
    # When walked with pages that end inside one key's versions
    inv = walk(store, w.layout.prefix, page_size=page_size)
    import boto3

    reference = walk(S3Store(bucket, boto3.client("s3", region_name="us-east-1")), w.layout.prefix)
    # Then the inventory is the same and the cost is one request per page
    assert _snapshot(inv) == _snapshot(reference)
    assert inv.object_versions == 10 and inv.delete_markers == 2
    assert store.requests.by_operation["ListObjectVersions"] == -(-10 // page_size)
    tag = inv.get(w.layout.key(TagCurrentLink("team/app", "1.0")))
    assert tag is not None and tag.deleted and tag.latest.is_delete_marker
    bodies = [
        s3.get_object(Bucket=bucket, Key=tag.key, VersionId=v.version_id)["Body"].read()
        for v in tag.data_versions
    ]
    assert bodies == [digest_of(x).link_body() for x in ("c", "b", "a")]  # newest first
    assert sum(1 for h in inv if not h.deleted) == 4


BOUNDARY_KEYS = [
    "docker/registry/v2/aaa-junk",  # before blobs/
    "docker/registry/v2/blobs/md5/x/data",  # an algorithm the layout does not know
    "docker/registry/v2/blobs/sha256/1",  # exactly a range bound
    "docker/registry/v2/blobs/sha256/ff/x/data",
    "docker/registry/v2/blobs/sha512/aa/x/data",
    "docker/registry/v2/repositories/",  # exactly a range bound
    "docker/registry/v2/repositories/0/_layers/x",
    "docker/registry/v2/repositories/z/_manifests/x",
    "docker/registry/v2/repositories/~nested/x",  # after every repository bound
    "docker/registry/v2/zzz-junk",  # after repositories/
]


@pytest.fixture
def s3_key_markers(monkeypatch):
    """Stock moto 5 skips the first key after a KeyMarker that is not itself a key (S3 starts right
    after the marker, whatever it is); the emulator's listing does what S3 does, and so do these tests."""
    monkeypatch.setattr(s3_models.S3Backend, "list_object_versions", moto_patches.list_object_versions)


@pytest.mark.parametrize("page_size", [1, 3, 1000])
@pytest.mark.parametrize("blob_shards", [16, 256])
def test_sharded_walk_in_parallel_equals_one_walk(s3, bucket, s3_key_markers, page_size, blob_shards):
    # Given a bucket with history, blobs in many ranges and keys on and around every kind of range bound
    w = _history_bucket(s3, bucket)
    for i in range(40):
        w.put(BlobData(digest_of(f"spread{i}")), b"x" * i)
    for key in BOUNDARY_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=b"j")
        s3.put_object(Bucket=bucket, Key=key, Body=b"jj")  # two versions each
    layout: RegistryLayout = w.layout
    one = walk(S3Store(bucket, s3), layout.prefix, page_size=page_size)
    import boto3

    # When the same prefix is walked as key ranges, in parallel
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))
    seen: list[tuple[int, int]] = []
    bounds = layout.shard_bounds(blob_shards)
    sharded = walk_shards(
        store, layout.prefix, bounds, workers=8, page_size=page_size, progress=lambda *c: seen.append(c)
    )
    # Then every key is in it once, with every version, and the counts agree
    assert _snapshot(sharded) == _snapshot(one)
    assert set(BOUNDARY_KEYS) <= {h.key for h in sharded}
    assert (sharded.object_versions, sharded.delete_markers) == (one.object_versions, one.delete_markers)
    # one request per range at least, and at most one page past each range's end
    requests = store.requests.by_operation["ListObjectVersions"]
    assert len(bounds) + 1 <= requests <= one.pages + 2 * (len(bounds) + 1)
    # progress reports totals over the shards, ending at every version
    assert max(c[1] for c in seen) == one.object_versions


def test_merge_refuses_overlapping_shards():
    t = datetime(2026, 1, 1, tzinfo=UTC)
    a, b = Inventory(), Inventory()
    a.add(VersionRecord("k", "1", t, True, False, 1, "e"))
    b.add(VersionRecord("k", "2", t, False, False, 1, "e"))
    with pytest.raises(ValueError, match="overlap"):
        a.merge(b)


def test_version_order_and_point_in_time_lookup():
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    inv = Inventory()
    # delete marker and a data version in the same second: the marker is taken as newer
    inv.add(VersionRecord("k", "v3", t0 + timedelta(seconds=20), True, False, 71, "e3"))
    inv.add(VersionRecord("k", "v1", t0, False, False, 71, "e1"))
    inv.add(VersionRecord("k", "v2", t0 + timedelta(seconds=10), False, False, 71, "e2"))
    inv.add(VersionRecord("k", "dm", t0 + timedelta(seconds=10), False, True, 0, None))
    inv.finalize()
    h = inv.get("k")
    assert [v.version_id for v in h.versions] == ["v3", "dm", "v2", "v1"]
    assert h.version_at(t0 - timedelta(seconds=1)) is None
    assert h.version_at(t0 + timedelta(seconds=5)).version_id == "v1"
    assert h.version_at(t0 + timedelta(seconds=10)) is None  # deleted at that second
    assert h.version_at(t0 + timedelta(seconds=30)).version_id == "v3"
    assert h.first_written == t0 and not h.deleted


def test_inventory_holds_no_object_bodies(s3, bucket):
    # memory grows with keys, not bytes: nothing in the model references body data
    s3.put_object(Bucket=bucket, Key="docker/registry/v2/blobs/x", Body=b"z" * 100_000)
    inv = walk(S3Store(bucket, s3), "docker/registry/v2/")
    v = inv.get("docker/registry/v2/blobs/x").versions[0]
    assert v.size == 100_000
    assert all(not isinstance(getattr(v, f), bytes | bytearray) for f in v.__slots__)


def test_upload_scratch_is_folded_into_one_summary_per_upload(s3, bucket):
    from regvault.audit.run import AuditRequest, run_audit
    from regvault.storage.layout import UploadObject
    from regvault.storage.model import RegistryModel

    from .builders import push_image

    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1", "a")
    # a finished upload (every key delete-marked) and an abandoned one (keys still live)
    for upload, finished in (("done-1", True), ("open-2", False)):
        for path in ("startedat", "data", "hashstates/sha256/0"):
            w.put(UploadObject("team/app", upload, path), b"x")
            w.put(UploadObject("team/app", upload, path), b"y")
            if finished:
                w.delete(UploadObject("team/app", upload, path))
    store = S3Store(bucket, s3)
    layout = RegistryLayout("")
    full = walk(store, layout.prefix)
    folded = walk(store, layout.prefix, scratch=layout.upload_group)
    # the same versions counted, no upload key held in full, one summary per upload
    assert (folded.object_versions, folded.delete_markers) == (full.object_versions, full.delete_markers)
    assert not any("/_uploads/" in key for key in folded.keys)
    assert set(folded.scratch) == {("team/app", "open-2")}  # the finished upload keeps nothing
    assert folded.scratch_keys == 6 and len(folded) == len(full)
    assert folded.scratch[("team/app", "open-2")].keys == 3
    assert folded.scratch[("team/app", "open-2")].newest_live == max(
        h.current.last_modified for h in full if "open-2" in h.key
    )
    # the model and the audit see the same uploads either way
    assert set(RegistryModel(folded, layout).repositories["team/app"].upload_summaries) == {"open-2"}
    assert set(RegistryModel(full, layout).repositories["team/app"].uploads) == {"done-1", "open-2"}
    report = run_audit(store, layout, AuditRequest(grace=timedelta(0)))
    stale = [f.key for f in report.findings if f.code == "STALE_UPLOAD"]
    assert stale == [layout.prefix + "repositories/team/app/_uploads/open-2/"]


def test_folded_shards_merge(s3, bucket, s3_key_markers):
    from regvault.storage.layout import UploadObject

    w = RegistryWriter(s3, bucket)
    for repo in ("a", "b"):
        w.put(UploadObject(repo, "u1", "startedat"), b"x")
    store = S3Store(bucket, s3)
    layout = RegistryLayout("")
    merged = walk_shards(store, layout.prefix, [layout.repository_prefix("b")], scratch=layout.upload_group)
    assert set(merged.scratch) == {("a", "u1"), ("b", "u1")} and len(merged) == 2


def test_a_walk_that_skips_upload_folders_keeps_everything_else_also_with_nested_repositories(s3, bucket):
    """Repository names nest (``app`` and ``app/sub``; ``app/0x`` sorts before ``app/_layers``): a walk
    that jumps past each upload folder holds every other key with every version, and the live uploads."""
    layout = RegistryLayout("")
    w = RegistryWriter(s3, bucket)
    for repo in ("app", "app/0x", "app/sub", "zed"):
        for i in range(3):
            w.put(TagCurrentLink(repo, f"t{i}"), digest_of(f"{repo}{i}").link_body())
        for u in range(12):  # finished uploads: every key delete-marked
            for name in ("data", "startedat", "hashstates/sha256/0"):
                key = f"{layout.repository_prefix(repo)}_uploads/u{u:02d}/{name}"
                s3.put_object(Bucket=bucket, Key=key, Body=b"x")
                s3.delete_object(Bucket=bucket, Key=key)
        s3.put_object(Bucket=bucket, Key=f"{layout.repository_prefix(repo)}_uploads/live/data", Body=b"y")
    s3.put_object(Bucket=bucket, Key=f"{layout.repository_prefix('app')}_junk", Body=b"?")
    store = S3Store(bucket, s3)
    full = walk(store, layout.prefix, page_size=10, scratch=layout.upload_group)
    lean = walk(
        store, layout.prefix, page_size=10, scratch=layout.upload_group, skip_scratch=layout.scratch_folder
    )
    assert _snapshot(lean) == _snapshot(full)  # every non-scratch key, every version
    assert (
        set(lean.scratch) == set(full.scratch) == {(r, "live") for r in ("app", "app/0x", "app/sub", "zed")}
    )
    assert lean.scratch_folders_skipped >= 3 and full.scratch_folders_skipped == 0
    # the folders' versions were mostly not listed
    assert lean.object_versions < full.object_versions * 0.7
    # the same with key ranges that cut between the nested repositories
    bounds = [layout.repository_prefix("app/0x"), layout.repository_prefix("app/sub")]
    ranged = walk_shards(
        store,
        layout.prefix,
        bounds,
        page_size=10,
        scratch=layout.upload_group,
        skip_scratch=layout.scratch_folder,
    )
    assert _snapshot(ranged) == _snapshot(full) and set(ranged.scratch) == set(full.scratch)


def test_repository_bounds_cut_at_every_repository_folder_deleted_ones_too(s3, bucket):
    from regvault.storage.inventory import repository_bounds

    layout = RegistryLayout("")
    w = RegistryWriter(s3, bucket)
    for repo in ("app", "app/sub", "team/x", "team/y", "gone"):
        w.put(TagCurrentLink(repo, "1"), digest_of(repo).link_body())
    w.delete(TagCurrentLink("gone", "1"))  # a deleted repository: only delete markers left
    store = S3Store(bucket, s3)
    top = layout.repositories_prefix
    bounds = repository_bounds(store, top)
    assert bounds == [
        f"{top}app/",
        f"{top}app/sub/",
        f"{top}gone/",
        f"{top}team/",
        f"{top}team/x/",
        f"{top}team/y/",
    ]
    # with many first-level folders it stops at the first level
    assert repository_bounds(store, top, wide=2) == [f"{top}app/", f"{top}gone/", f"{top}team/"]
    # every key still lands in exactly one range
    full = walk(store, layout.prefix, page_size=2)
    ranged = walk_shards(store, layout.prefix, layout.shard_bounds(16, bounds), page_size=2)
    assert _snapshot(ranged) == _snapshot(full)
