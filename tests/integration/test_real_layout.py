"""The storage model proven on what the real registry wrote when real skopeo pushed."""

import hashlib
import json

from regvault.images.manifests import DOCKER_LIST, DOCKER_SCHEMA2, OCI_INDEX, OCI_MANIFEST, parse_manifest
from regvault.storage.digest import Digest
from regvault.storage.layout import (
    BlobData,
    LayerLink,
    RegistryLayout,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    UnknownKey,
    UploadObject,
)

from .support import all_versions


def test_every_key_the_registry_wrote_parses_and_renders_back(samples):
    env, _ = samples
    layout = RegistryLayout(env.root)
    versions = all_versions(env)
    keys = {v["Key"] for v in versions}
    kinds: dict[type, int] = {}
    for key in keys:
        entity = layout.parse(key)
        assert not isinstance(entity, UnknownKey), (key, entity)
        assert layout.key(entity) == key
        kinds[type(entity)] = kinds.get(type(entity), 0) + 1
    # every kind of key the model knows was seen on real output
    assert set(kinds) == {BlobData, LayerLink, RevisionLink, TagCurrentLink, TagIndexLink, UploadObject}
    # upload scratch is delete-marked once a push completes
    uploads = [v for v in versions if isinstance(layout.parse(v["Key"]), UploadObject)]
    assert any(v["DeleteMarker"] for v in uploads)
    # every link object is 71 bytes: sha256:<64 hex>
    for v in versions:
        if v["Key"].endswith("/link") and not v["DeleteMarker"]:
            assert v["Size"] == 71


def _s3_bytes(env, digest: str) -> bytes:
    key = RegistryLayout(env.root).key(BlobData(Digest.parse(digest)))
    return env.s3.get_object(Bucket=env.bucket, Key=key)["Body"].read()


def _independent_descriptors(doc):
    """What the manifest references, read with plain json (not regvault's parser)."""
    out = []
    if "config" in doc:
        out.append(("config", doc["config"]["digest"], doc["config"]["size"]))
    out += [("layer", x["digest"], x["size"]) for x in doc.get("layers", [])]
    out += [("manifest", x["digest"], x["size"]) for x in doc.get("manifests", [])]
    return out


def test_manifests_of_all_four_media_types_parse_to_what_skopeo_sent(samples):
    env, pushed = samples
    expected_types = {
        "team/app:1.0": OCI_MANIFEST,
        "team/api:2.0": DOCKER_SCHEMA2,
        "team/multi:1": OCI_INDEX,
        "team/multi-list:1": DOCKER_LIST,
    }
    for reference, media_type in expected_types.items():
        digest = pushed[reference]["digest"]
        served = env.skopeo.inspect_raw(reference)
        stored = _s3_bytes(env, digest)
        # the bytes skopeo sent are the bytes in S3, and they hash to the digest
        assert stored == served
        assert "sha256:" + hashlib.sha256(stored).hexdigest() == digest
        manifest = parse_manifest(stored)
        assert manifest.media_type == media_type
        assert [(d.role, str(d.digest), d.size) for d in manifest.descriptors] == _independent_descriptors(
            json.loads(served)
        )
        built = pushed[reference]["image"]
        if manifest.kind == "image":
            # the layers are the blobs we built; skopeo may rewrite only the config for v2s2
            assert {str(x.digest): x.size for x in manifest.layers}.items() <= built.blobs.items()
        else:
            assert len(manifest.children) == 2
            assert {c.platform for c in manifest.children} == {"linux/amd64", "linux/arm64"}
            for child in manifest.children:
                child_manifest = parse_manifest(_s3_bytes(env, str(child.digest)))
                assert child_manifest.kind == "image"
                assert child_manifest.media_type == (
                    DOCKER_SCHEMA2 if media_type == DOCKER_LIST else OCI_MANIFEST
                )
                assert {str(x.digest): x.size for x in child_manifest.layers}.items() <= built.blobs.items()


def test_closure_of_every_pushed_tag_is_in_s3_with_links(samples):
    env, pushed = samples
    layout = RegistryLayout(env.root)
    live = {v["Key"]: v for v in all_versions(env) if v["IsLatest"] and not v["DeleteMarker"]}
    for reference, item in pushed.items():
        repository, tag = reference.rsplit(":", 1)
        top = Digest.parse(item["digest"])
        assert layout.key(TagCurrentLink(repository, tag)) in live
        assert layout.key(TagIndexLink(repository, tag, top)) in live
        pending = [top]
        while pending:
            digest = pending.pop()
            assert layout.key(RevisionLink(repository, digest)) in live
            manifest = parse_manifest(_s3_bytes(env, str(digest)))
            pending += [c.digest for c in manifest.children]
            for blob in manifest.blobs:
                assert live[layout.key(BlobData(blob.digest))]["Size"] == blob.size
                assert layout.key(LayerLink(repository, blob.digest)) in live


def test_big_layer_went_through_multipart_chunks(samples):
    env, pushed = samples
    manifest = parse_manifest(_s3_bytes(env, pushed["team/app:1.1"]["digest"]))
    big = max(manifest.layers, key=lambda x: x.size)
    assert big.size > 5 * 1024 * 1024
    head = env.s3.head_object(Bucket=env.bucket, Key=RegistryLayout(env.root).key(BlobData(big.digest)))
    assert head["ContentLength"] == big.size
    # the upload was written in 5 MiB multipart chunks, then copied into blobs/
    uploads = [v for v in all_versions(env) if "/_uploads/" in v["Key"] and v["Key"].endswith("/data")]
    assert any(v["Size"] == big.size and "-" in v["ETag"] for v in uploads if not v["DeleteMarker"])
