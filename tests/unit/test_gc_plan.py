"""The GC's mark and plan: each safety rule keeps what it must (index children, referrers, grace,
shared blobs), and with --delete-untagged the untagged manifests and what only they use go."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from regvault.aws.s3 import S3Store
from regvault.errors import InvalidInput
from regvault.garbage.plan import BLOB, MANIFEST, REVISION_LINK, TAG_INDEX_LINK
from regvault.garbage.usecase import GcRequest, plan_gc
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, LayerLink, RegistryLayout

from .builders import RegistryWriter, oci_manifest, push_image, put_manifest

LATER = datetime.now(UTC) + timedelta(hours=3)  # everything written in the test is past the 2 h grace window


def _blob(w, repo, body):
    d = Digest.of(body)
    w.put(BlobData(d), body)
    w.put(LayerLink(repo, d), d.link_body())
    return d


def _index(children):
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": str(d), "size": n}
                for d, n in children
            ],
        }
    ).encode()


def _referrer(w, repo, subject, subject_size, label):
    config = _blob(w, repo, f"sig-cfg-{label}".encode())
    layer = _blob(w, repo, f"sig-{label}".encode())
    doc = json.loads(oci_manifest(config, [layer]))
    doc["subject"] = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": str(subject),
        "size": subject_size,
    }
    body = json.dumps(doc).encode()
    digest = Digest.of(body)
    from regvault.storage.layout import RevisionLink

    w.put(BlobData(digest), body)
    w.put(RevisionLink(repo, digest), digest.link_body())  # pushed by digest: no tag
    return digest, config, layer


@pytest.fixture
def registry(s3, bucket):
    w = RegistryWriter(s3, bucket)
    old = push_image(w, "app", "v1", "old")  # then overwritten: untagged
    new = push_image(w, "app", "v1", "new")
    # a multi-arch index: its children are untagged manifests of their own
    children = []
    for arch in ("amd64", "arm64"):
        config, layer = _blob(w, "multi", f"cfg-{arch}".encode()), _blob(w, "multi", f"layer-{arch}".encode())
        body = oci_manifest(config, [layer])
        digest = Digest.of(body)
        from regvault.storage.layout import RevisionLink

        w.put(BlobData(digest), body)
        w.put(RevisionLink("multi", digest), digest.link_body())
        children.append((digest, len(body), layer))
    index = put_manifest(w, "multi", "latest", _index([(d, n) for d, n, _ in children]))
    # a signature of app:v1 (an OCI referrer, untagged)
    new_size = len(
        oci_manifest(
            Digest.of(b"cfg-new"),
            [Digest.of(b"layer-new")],
            {Digest.of(b"cfg-new"): 7, Digest.of(b"layer-new"): 9},
        )
    )
    signature, sig_config, sig_layer = _referrer(w, "app", new, new_size, "new")
    # a layer shared by app's old image and another repository's tagged image
    shared = _blob(w, "other", b"layer-old")
    put_manifest(w, "other", "1", oci_manifest(_blob(w, "other", b"cfg-other"), [shared]))
    # a blob nothing references (an orphan)
    orphan = Digest.of(b"orphan")
    w.put(BlobData(orphan), b"orphan")
    return (
        S3Store(bucket, s3),
        RegistryLayout(""),
        {
            "old": old,
            "new": new,
            "index": index,
            "children": children,
            "signature": signature,
            "signature_blobs": (sig_config, sig_layer),
            "shared": shared,
            "orphan": orphan,
        },
    )


def _swept(plan):
    return {(s.kind, s.digest) for s in plan.sweeps}


def test_by_default_every_linked_manifest_is_kept_and_only_orphans_go(registry):
    store, layout, d = registry
    plan = plan_gc(store, layout, GcRequest(now=LATER)).plan
    assert _swept(plan) == {(BLOB, d["orphan"])}
    assert plan.summary()["bytes"] == len(b"orphan")


def test_delete_untagged_keeps_index_children_referrers_and_shared_blobs(registry):
    store, layout, d = registry
    outcome = plan_gc(store, layout, GcRequest(delete_untagged=True, now=LATER))
    swept = _swept(outcome.plan)
    old_config, old_layer = Digest.of(b"cfg-old"), Digest.of(b"layer-old")
    # the overwritten image goes: its manifest blob, revision link, tag index entry and its config
    assert {
        (MANIFEST, d["old"]),
        (REVISION_LINK, d["old"]),
        (TAG_INDEX_LINK, d["old"]),
        (BLOB, old_config),
    } <= swept
    # ... but not its layer: another repository's tagged image uses it
    assert d["shared"] == old_layer and not {k for k in swept if k[1] == old_layer}
    # the index's children and their blobs stay (registry:2's GC sweeps them: distribution #3004)
    for child, _, layer in d["children"]:
        assert not {k for k in swept if k[1] in (child, layer)}, child
        assert "child of" in outcome.marked.why[("multi", child)]
    # the signature of a kept image stays, with its blobs
    assert not {k for k in swept if k[1] in (d["signature"], *d["signature_blobs"])}
    assert "refers to" in outcome.marked.why[("app", d["signature"])]
    assert (BLOB, d["orphan"]) in swept
    summary = outcome.plan.summary()
    assert summary["manifests"] == 1 and summary["links"] == 2 and summary["blobs"] == 2
    assert outcome.plan.by_repository()["app"]["objects"] == 4  # manifest, config, two links


def test_nothing_written_within_the_grace_window_is_swept(registry):
    store, layout, _ = registry
    # "now" is the time of the writes: everything is younger than two hours
    plan = plan_gc(store, layout, GcRequest(delete_untagged=True)).plan
    assert plan.sweeps == []


def test_a_referrer_of_an_untagged_image_goes_with_it(registry, s3, bucket):
    store, layout, d = registry
    w = RegistryWriter(s3, bucket)
    old_size = len(
        oci_manifest(
            Digest.of(b"cfg-old"),
            [Digest.of(b"layer-old")],
            {Digest.of(b"cfg-old"): 7, Digest.of(b"layer-old"): 9},
        )
    )
    stale_signature, _, _ = _referrer(w, "app", d["old"], old_size, "old")
    swept = _swept(plan_gc(store, layout, GcRequest(delete_untagged=True, now=LATER)).plan)
    assert (MANIFEST, stale_signature) in swept and (REVISION_LINK, stale_signature) in swept


def test_bad_requests_are_refused():
    with pytest.raises(InvalidInput, match="grace"):
        GcRequest(grace=timedelta(hours=-1))
    with pytest.raises(InvalidInput, match="workers"):
        GcRequest(workers=0)
