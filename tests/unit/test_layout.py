import pytest
from hypothesis import given
from hypothesis import strategies as st

from regvault.errors import InvalidInput
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
from regvault.storage.reference import Reference, validate_repository, validate_tag

D = Digest.parse("sha256:" + "ab" * 32)
PREFIX = "docker/registry/v2/"


@pytest.mark.parametrize(
    ("entity", "relative"),
    [
        (BlobData(D), f"blobs/sha256/ab/{D.hex}/data"),
        (LayerLink("team/app", D), f"repositories/team/app/_layers/sha256/{D.hex}/link"),
        (RevisionLink("a/b/c", D), f"repositories/a/b/c/_manifests/revisions/sha256/{D.hex}/link"),
        (TagCurrentLink("team/app", "1.2"), "repositories/team/app/_manifests/tags/1.2/current/link"),
        (
            TagIndexLink("team/app", "latest", D),
            f"repositories/team/app/_manifests/tags/latest/index/sha256/{D.hex}/link",
        ),
        (
            UploadObject("app", "0f1e-uuid", "hashstates/sha256/0"),
            "repositories/app/_uploads/0f1e-uuid/hashstates/sha256/0",
        ),
    ],
)
def test_entity_key_round_trip(entity, relative):
    layout = RegistryLayout("")
    key = layout.key(entity)
    assert key == PREFIX + relative
    assert layout.parse(key) == entity


@pytest.mark.parametrize("root", ["/deep/root", "deep/root", "deep/root/", " /deep/root/ "])
def test_root_accepted_with_or_without_leading_slash(root):
    layout = RegistryLayout(root)
    assert layout.prefix == "deep/root/docker/registry/v2/"
    key = layout.key(TagCurrentLink("app", "v1"))
    assert key == "deep/root/docker/registry/v2/repositories/app/_manifests/tags/v1/current/link"
    assert layout.parse(key) == TagCurrentLink("app", "v1")


@pytest.mark.parametrize(
    ("relative", "reason"),
    [
        ("blobs/sha256/ab/" + "ab" * 31 + "/data", "64 lowercase hex"),
        ("blobs/sha256/cd/" + "ab" * 32 + "/data", "does not match"),
        ("blobs/md5/ab/abab/data", "unsupported algorithm"),
        ("blobs/sha256/ab/" + "ab" * 32 + "/other", "blobs/<alg>"),
        ("repositories/Team/_layers/sha256/" + "ab" * 32 + "/link", "invalid repository"),
        ("repositories/_layers/sha256/" + "ab" * 32 + "/link", "no _layers"),
        ("repositories/app/_manifests/tags/.bad/current/link", "invalid tag"),
        ("repositories/app/_manifests/tags/v1/weird/link", "unrecognised"),
        ("repositories/app/something", "no _layers"),
        ("scratch/file", "neither blobs"),
    ],
)
def test_malformed_keys_are_unknown_with_a_reason(relative, reason):
    layout = RegistryLayout("")
    entity = layout.parse(PREFIX + relative)
    assert isinstance(entity, UnknownKey)
    assert reason in entity.reason
    assert layout.key(entity) == PREFIX + relative  # still renders back


def test_key_outside_prefix_is_unknown():
    entity = RegistryLayout("root").parse("other/docker/registry/v2/blobs/x")
    assert isinstance(entity, UnknownKey) and "outside" in entity.reason


def test_shard_bounds_are_sorted_and_cut_blobs_and_repositories():
    layout = RegistryLayout("r")
    for blob_shards in (16, 256):
        bounds = layout.shard_bounds(blob_shards)
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)
        assert all(b.startswith(layout.prefix) for b in bounds)
        ranges = list(zip([None, *bounds], [*bounds, None], strict=True))
        # digests spread over the blob ranges: each key is in exactly one, and 16 ranges are used
        keys = [layout.key(BlobData(Digest.of(bytes([i])))) for i in range(256)]
        homes = [
            [k for k, (a, b) in enumerate(ranges) if (a is None or key > a) and (b is None or key <= b)]
            for key in keys
        ]
        assert all(len(h) == 1 for h in homes)
        assert len({h[0] for h in homes}) >= 16
    with pytest.raises(InvalidInput):
        layout.shard_bounds(3)


names = (
    st.lists(st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True), min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda n: len(n) <= 255)
)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
digests = st.binary(min_size=0, max_size=8).map(Digest.of)


@given(name=names, tag=tags, digest=digests, root=st.sampled_from(["", "/r", "a/b"]))
def test_every_entity_round_trips(name, tag, digest, root):
    layout = RegistryLayout(root)
    for entity in (
        BlobData(digest),
        LayerLink(name, digest),
        RevisionLink(name, digest),
        TagCurrentLink(name, tag),
        TagIndexLink(name, tag, digest),
    ):
        assert layout.parse(layout.key(entity)) == entity


@given(st.text(max_size=200))
def test_parse_never_raises_on_arbitrary_keys(text):
    layout = RegistryLayout("")
    entity = layout.parse(PREFIX + text)
    assert layout.key(entity) == PREFIX + text


# --- references -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "repo", "tag", "digest"),
    [
        ("team/app:1.2", "team/app", "1.2", None),
        ("app", "app", None, None),
        (f"team/app@{D}", "team/app", None, D),
        (f"team/app:v1@{D}", "team/app", "v1", D),
        ("a.b/c__d/e-f:Latest_1", "a.b/c__d/e-f", "Latest_1", None),
    ],
)
def test_reference_parse(text, repo, tag, digest):
    ref = Reference.parse(text)
    assert (ref.repository, ref.tag, ref.digest) == (repo, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Team/app:1",
        "team//app",
        "team/app/",
        "../etc",
        "team/app:",
        "team/app:-x",
        "team/app:" + "x" * 129,
        "team/app@sha256:abc",
        "team/app@md5:" + "a" * 32,
        "localhost:5000/app:1",
        "tëam/app",
        "team/a\x00pp",
        "a" * 256,
    ],
)
def test_reference_rejects_bad_input_with_one_line(text):
    with pytest.raises(InvalidInput) as info:
        Reference.parse(text)
    assert "\n" not in str(info.value)


def test_validators():
    assert validate_repository("a/b") == "a/b"
    assert validate_tag("v1.0") == "v1.0"
    with pytest.raises(InvalidInput):
        validate_tag(".hidden")


@given(st.text(max_size=300))
def test_reference_parser_fuzz_only_raises_invalid_input(text):
    try:
        ref = Reference.parse(text)
    except InvalidInput:
        return
    assert Reference.parse(str(ref)) == ref


def test_digest_link_body_and_etag():
    assert D.link_body() == f"sha256:{D.hex}".encode()
    assert len(D.link_body()) == 71
    import hashlib

    assert D.link_etag() == hashlib.md5(D.link_body()).hexdigest()
