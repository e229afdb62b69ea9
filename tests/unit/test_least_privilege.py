"""Each role grants exactly what its code calls: the S3 operations are recorded while the real code
runs (under moto) and mapped to IAM actions, then compared with the template's statements."""

import json
from datetime import UTC, datetime, timedelta

import boto3

from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.garbage.usecase import GcRequest, collect_garbage, undo_garbage
from regvault.images.listing import list_registry
from regvault.repair.usecase import heal
from regvault.restore.usecase import RestoreRequest, restore_images
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, RegistryLayout, TagCurrentLink

from .builders import RegistryWriter, push_image
from .test_template import functions, registry_bucket_actions

# S3 API operation -> the IAM action it needs (a versioned read needs GetObjectVersion too)
ACTION = {
    "ListObjectVersions": {"s3:ListBucketVersions"},
    "ListObjects": {"s3:ListBucket"},
    "ListObjectsV2": {"s3:ListBucket"},
    "HeadBucket": {"s3:ListBucket"},
    "GetObject": {"s3:GetObject", "s3:GetObjectVersion"},
    "HeadObject": {"s3:GetObject", "s3:GetObjectVersion"},
    "CopyObject": {"s3:PutObject", "s3:GetObjectVersion", "s3:GetObject"},
    "GetBucketVersioning": {"s3:GetBucketVersioning"},
    "GetBucketLifecycleConfiguration": {"s3:GetLifecycleConfiguration"},
    "GetBucketEncryption": {"s3:GetEncryptionConfiguration"},
    "GetPublicAccessBlock": {"s3:GetBucketPublicAccessBlock"},
    "GetBucketPolicy": {"s3:GetBucketPolicy"},
    "PutObject": {"s3:PutObject"},
    "DeleteObject": {"s3:DeleteObject"},
}


def needed(store: S3Store) -> set[str]:
    return {a for operation in store.requests.by_operation for a in ACTION[operation]}


def fresh(bucket):
    return S3Store(bucket, boto3.client("s3", region_name="us-east-1"))


def test_each_role_grants_what_its_code_calls_and_nothing_else(s3, bucket, template):
    w = RegistryWriter(s3, bucket)
    first = push_image(w, "app", "v1", "a")
    push_image(w, "app", "v1", "b")
    w.delete(BlobData(Digest.of(b"layer-a")))
    layout = RegistryLayout("")

    audit = fresh(bucket)
    run_audit(audit, layout, AuditRequest(deep=True))
    catalog = fresh(bucket)
    list_registry(catalog, layout)
    restore = fresh(bucket)  # the use case: under the writers' lease
    assert restore_images(restore, layout, RestoreRequest("app", "v1", to=str(first), apply=True)).applied
    repair = fresh(bucket)  # self-healing: audit (no posture reads), repair in place, audit again
    w.delete(BlobData(Digest.of(b"cfg-a")))  # app:v1 (back at image a) broken again
    assert heal(repair, layout)["summary"]["copied"] >= 1
    guard = fresh(bucket)  # a protected tag moved: pinned, put back (a marked copy), its own event ignored
    from regvault.guard.patterns import Protection
    from regvault.guard.usecase import guard_event

    key = layout.key(TagCurrentLink("app", "v1"))
    push_image(w, "app", "v1", "c")
    latest = s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"][0]["VersionId"]
    assert guard_event(guard, layout, Protection.parse("app:v*"), key, latest).action == "reverted"
    gc = fresh(bucket)  # a sweep (lease, run record, delete markers), then its undo (copies back)
    later = datetime.now(UTC) + timedelta(hours=3)
    run = collect_garbage(gc, layout, GcRequest(delete_untagged=True, now=later), apply=True)
    undo_garbage(gc, layout, run.run_id or "", apply=True)

    fns = functions(template)
    roles = (
        ("AuditFunction", audit),
        ("CatalogFunction", catalog),
        ("RestoreFunction", restore),
        ("RepairFunction", repair),
        ("GuardFunction", guard),
        ("GcFunction", gc),
    )
    for name, store in roles:
        granted = registry_bucket_actions(fns[name])
        # s3:ListBucket is granted with ListBucketVersions: S3 requires it for listing at all
        assert needed(store) <= granted, (name, needed(store) - granted)
        assert granted - needed(store) <= {"s3:ListBucket", "s3:GetObject"}, (name, granted - needed(store))
    assert not any(
        op.startswith("Delete") for store in (audit, catalog, guard) for op in store.requests.by_operation
    )
    # the restore's one delete: a marker that releases the lease (the template scopes it to that key)
    assert restore.requests.by_operation["DeleteObject"] == 1
    assert repair.requests.by_operation["DeleteObject"] == 1  # the same: its lease
    # the GC sweeps with delete markers: its role cannot delete a version, anywhere
    assert gc.requests.by_operation["DeleteObject"] >= 1
    assert "DeleteObjectVersion" not in json.dumps(fns["GcFunction"]["Properties"]["Policies"])
