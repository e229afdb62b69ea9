import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from regvault.errors import ManifestError
from regvault.images.manifests import (
    DOCKER_LIST,
    DOCKER_SCHEMA1,
    DOCKER_SCHEMA1_SIGNED,
    DOCKER_SCHEMA2,
    MAX_MANIFEST_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
)
from regvault.storage.digest import Digest


def d(n: int) -> str:
    return str(Digest.of(str(n).encode()))


def desc(media_type: str, n: int, size: int = 10, **extra):
    return {"mediaType": media_type, "digest": d(n), "size": size, **extra}


def body(doc) -> bytes:
    return json.dumps(doc).encode()


def test_docker_schema2_config_and_layers():
    m = parse_manifest(
        body(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_SCHEMA2,
                "config": desc("application/vnd.docker.container.image.v1+json", 1, 100),
                "layers": [
                    desc("application/vnd.docker.image.rootfs.diff.tar.gzip", 2, 200),
                    desc("application/vnd.docker.image.rootfs.diff.tar.gzip", 3, 300),
                ],
            }
        )
    )
    assert (m.media_type, m.kind) == (DOCKER_SCHEMA2, "image")
    assert str(m.config.digest) == d(1) and m.config.size == 100
    assert [(str(x.digest), x.size) for x in m.layers] == [(d(2), 200), (d(3), 300)]
    assert m.children == () and m.subject is None and len(m.blobs) == 3


def test_oci_manifest_with_subject_and_foreign_layer():
    m = parse_manifest(
        body(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": "application/vnd.example.sbom",
                "config": desc("application/vnd.oci.empty.v1+json", 1, 2),
                "layers": [
                    desc("application/vnd.oci.image.layer.v1.tar", 2),
                    desc("application/vnd.oci.image.layer.nondistributable.v1.tar", 3, urls=["https://x"]),
                ],
                "subject": desc(OCI_MANIFEST, 9, 500),
            }
        )
    )
    assert m.artifact_type == "application/vnd.example.sbom"
    assert str(m.subject.digest) == d(9)
    assert [str(x.digest) for x in m.blobs] == [d(1), d(2)]  # foreign layer is not in the registry
    assert m.layers[1].foreign


def test_oci_index_and_docker_list_children_with_platforms():
    for media_type, child_type in ((OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_SCHEMA2)):
        m = parse_manifest(
            body(
                {
                    "schemaVersion": 2,
                    "mediaType": media_type,
                    "manifests": [
                        desc(child_type, 1, platform={"os": "linux", "architecture": "amd64"}),
                        desc(
                            child_type, 2, platform={"os": "linux", "architecture": "arm64", "variant": "v8"}
                        ),
                    ],
                }
            )
        )
        assert m.kind == "index"
        assert [(str(c.digest), c.platform) for c in m.children] == [
            (d(1), "linux/amd64"),
            (d(2), "linux/arm64/v8"),
        ]
        assert m.config is None and m.blobs == ()


def test_oci_media_type_may_be_omitted():
    assert parse_manifest(body({"schemaVersion": 2, "manifests": []})).media_type == OCI_INDEX
    m = parse_manifest(body({"schemaVersion": 2, "config": desc("x", 1), "layers": []}))
    assert m.media_type == OCI_MANIFEST


def test_schema1_is_recognised_as_legacy():
    unsigned = {
        "schemaVersion": 1,
        "name": "a",
        "tag": "1",
        "fsLayers": [{"blobSum": d(1)}, {"blobSum": d(1)}, {"blobSum": d(2)}],
    }
    m = parse_manifest(body(unsigned))
    assert m.legacy and m.media_type == DOCKER_SCHEMA1
    assert [str(x.digest) for x in m.layers] == [d(1), d(2)]
    signed = dict(unsigned, signatures=[{"header": {}}])
    assert parse_manifest(body(signed)).media_type == DOCKER_SCHEMA1_SIGNED


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1,2]", "not a JSON object"),
        (b'{"schemaVersion": 3}', "unsupported schemaVersion"),
        (b'{"schemaVersion": true, "config": {}}', "unsupported schemaVersion"),
        (b'{"schemaVersion": 2, "mediaType": "text/plain"}', "unknown manifest media type"),
        (b'{"schemaVersion": 2}', "neither"),
        (body({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}), "without a 'config'"),
        (
            body({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc("x", 1), "layers": {}}),
            "not a list",
        ),
        (
            body(
                {
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1},
                }
            ),
            "config descriptor",
        ),
        (body({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc("x", 1, -1)}), "no valid size"),
        (body({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": ["x"]}), "not an object"),
        (body({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "subject": 5}), "subject"),
        (b"[" * 100000 + b"]" * 100000, "not JSON"),
    ],
)
def test_not_a_manifest_gives_one_line_reason(raw, reason):
    with pytest.raises(ManifestError) as info:
        parse_manifest(raw)
    assert reason in str(info.value)
    assert "\n" not in str(info.value)


def test_oversized_manifest_is_refused_before_parsing():
    with pytest.raises(ManifestError, match="4 MiB"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
manifest_like = st.fixed_dictionaries(
    {"schemaVersion": st.sampled_from([1, 2, 2, 2, "2", None])},
    optional={
        "mediaType": st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_SCHEMA2, DOCKER_LIST, "x"]),
        "config": json_values,
        "layers": json_values,
        "manifests": json_values,
        "subject": json_values,
        "fsLayers": json_values,
    },
)


@given(st.one_of(manifest_like, json_values))
def test_parser_fuzz_only_raises_manifest_error(doc):
    try:
        m = parse_manifest(json.dumps(doc).encode())
    except ManifestError:
        return
    assert m.kind in ("image", "index", "schema1")


@given(st.binary(max_size=200))
def test_parser_fuzz_bytes(raw):
    with contextlib.suppress(ManifestError):
        parse_manifest(raw)
