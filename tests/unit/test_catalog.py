import boto3

from regvault.aws.s3 import S3Store
from regvault.images.listing import list_registry
from regvault.images.manifests import OCI_MANIFEST
from regvault.storage.layout import LayerLink, RevisionLink, TagCurrentLink, TagIndexLink

from .builders import RegistryWriter, push_image


def _entry(listing, repo, tag):
    r = next(r for r in listing.repositories if r.name == repo)
    return r, next(t for t in r.tags if t.tag == tag)


def test_ls_reports_history_deleted_tags_and_repositories(s3, bucket):
    # Given: a tag pushed twice, a deleted tag, and a repository deleted at S3 level
    w = RegistryWriter(s3, bucket)
    first = push_image(w, "team/app", "1.0", "a")
    second = push_image(w, "team/app", "1.0", "b")
    push_image(w, "team/app", "old", "a")
    w.delete(TagCurrentLink("team/app", "old"))
    w.delete(TagIndexLink("team/app", "old", first))
    gone = push_image(w, "gone/repo", "x", "c")
    for entity in (
        TagCurrentLink("gone/repo", "x"),
        TagIndexLink("gone/repo", "x", gone),
        RevisionLink("gone/repo", gone),
    ):
        w.delete(entity)
    for history in s3.list_object_versions(
        Bucket=bucket, Prefix="docker/registry/v2/repositories/gone/repo/_layers/"
    )["Versions"]:
        s3.delete_object(Bucket=bucket, Key=history["Key"])
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))

    # When
    listing = list_registry(store, w.layout)

    # Then
    repo, tag = _entry(listing, "team/app", "1.0")
    assert not repo.deleted and not tag.deleted
    assert tag.digest == second and tag.history == [second, first] and tag.earlier_digests == 1
    assert tag.media_type == OCI_MANIFEST
    _, old = _entry(listing, "team/app", "old")
    assert old.deleted and old.digest == first and old.history == [first]  # the last digest it had
    gone_repo, gone_tag = _entry(listing, "gone/repo", "x")
    assert gone_repo.deleted and gone_tag.deleted
    # links are identified by their ETag: no GET for any link, one GET per live manifest
    assert store.requests.by_operation["GetObject"] == 1
    assert store.requests.by_operation["ListObjectVersions"] == 1


def test_link_not_identified_by_etag_is_read(s3, bucket):
    # Given a current link to a digest with no index entry or revision in its repository
    w = RegistryWriter(s3, bucket)
    push_image(w, "app", "v1", "a")
    digest = push_image(w, "other", "v1", "b")
    w.put(TagCurrentLink("app", "v1"), digest.link_body())
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))
    listing = list_registry(store, w.layout)
    _, tag = _entry(listing, "app", "v1")
    # Then the link is read (one GET) and the manifest too (one GET)
    assert tag.digest == digest and tag.problem is None
    assert store.requests.by_operation["GetObject"] == 2


def test_malformed_current_link_is_reported_not_crashed_on(s3, bucket):
    w = RegistryWriter(s3, bucket)
    push_image(w, "app", "v1", "a")
    w.put(TagCurrentLink("app", "v1"), b"sha256:not-a-digest\n")
    listing = list_registry(S3Store(bucket, s3), w.layout)
    _, tag = _entry(listing, "app", "v1")
    assert tag.digest is None and "current link unreadable" in tag.problem


def test_layer_link_with_garbage_does_not_break_listing(s3, bucket):
    w = RegistryWriter(s3, bucket)
    d = push_image(w, "app", "v1", "a")
    w.put(LayerLink("app", d), b"garbage")
    listing = list_registry(S3Store(bucket, s3), w.layout, "app")
    assert [t.tag for t in listing.repositories[0].tags] == ["v1"]


def test_index_entries_whose_versions_expired_do_not_break_the_listing(s3, bucket):
    # Given an index entry with only a delete marker left (its data version expired) next to live ones
    w = RegistryWriter(s3, bucket)
    first = push_image(w, "app", "v1", "a")
    push_image(w, "app", "v1", "b")
    key = w.layout.key(TagIndexLink("app", "v1", first))
    s3.delete_object(Bucket=bucket, Key=key)  # a delete marker on top…
    for version in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])  # …and its data expired
    left = s3.list_object_versions(Bucket=bucket, Prefix=key)
    assert "Versions" not in left and len(left["DeleteMarkers"]) == 1
    listing = list_registry(S3Store(bucket, s3), w.layout)
    _, tag = _entry(listing, "app", "v1")
    assert tag.digest is not None and not tag.deleted
