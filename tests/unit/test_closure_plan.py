"""The image closure planner on built multi-arch images: child manifests are checked against the
descriptor their index declares."""

import json

import pytest

from regvault.aws.s3 import S3Store
from regvault.images.closure import MISSING, OK, Planner
from regvault.images.manifests import OCI_INDEX
from regvault.images.sources import LinkReader, ManifestSource
from regvault.storage.digest import Digest
from regvault.storage.inventory import walk
from regvault.storage.layout import BlobData, RegistryLayout, RevisionLink, TagCurrentLink, TagIndexLink
from regvault.storage.model import RegistryModel

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")


def push_index(w: RegistryWriter, repository: str, tag: str, declared_delta: int) -> tuple[Digest, Digest]:
    """An index over one image; its descriptor declares the child's size plus ``declared_delta``."""
    child = push_image(w, repository, "child", "arm64")
    size = len(w.s3.get_object(Bucket=w.bucket, Key=LAYOUT.key(BlobData(child)))["Body"].read())
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": str(child),
                    "size": size + declared_delta,
                    "platform": {"architecture": "arm64", "os": "linux"},
                }
            ],
        }
    ).encode()
    digest = Digest.of(index)
    w.put(BlobData(digest), index)
    w.put(RevisionLink(repository, digest), digest.link_body())
    w.put(TagIndexLink(repository, tag, digest), digest.link_body())
    w.put(TagCurrentLink(repository, tag), digest.link_body())
    return digest, child


def plan(s3, bucket, repository, digest, tag):
    store = S3Store(bucket, s3)
    model = RegistryModel(walk(store, LAYOUT.prefix, scratch=LAYOUT.upload_group), LAYOUT)
    planner = Planner(model, ManifestSource(store, model), LinkReader(store))
    return planner.image(repository, digest, tag)


@pytest.mark.parametrize("delta", [1, -1])
def test_a_child_whose_size_differs_from_its_descriptor_is_not_recoverable(s3, bucket, delta):
    # Given an index whose descriptor declares the wrong size for its (intact) child manifest
    index, child = push_index(RegistryWriter(s3, bucket), "app", "multi", delta)
    # When the planner plans the index
    image = plan(s3, bucket, "app", index, "multi")
    # Then the child is the one missing piece, and the reason names both sizes
    assert not image.recoverable
    [need] = image.missing
    assert need.state == MISSING and need.digest == child and need.phase == "manifest"
    assert "its index declares" in need.note


def test_a_child_matching_its_descriptor_is_fine(s3, bucket):
    index, child = push_index(RegistryWriter(s3, bucket), "app", "multi", 0)
    image = plan(s3, bucket, "app", index, "multi")
    assert image.recoverable and not image.copies
    assert {n.digest for n in image.needs if n.phase == "manifest"} == {index, child}
    assert all(n.state == OK for n in image.needs)
