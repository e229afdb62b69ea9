"""Restore's safety rules on built histories: interruption at every step, and a property test."""

from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from regvault.aws.s3 import S3Store
from regvault.errors import InvalidInput
from regvault.restore.apply import NotRestorable, apply_plan
from regvault.restore.planner import plan_restore
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, RegistryLayout, RevisionLink, TagCurrentLink

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")


class Interrupted(Exception):
    pass


class FailingStore(S3Store):
    """Dies after ``budget`` successful copies, like a Lambda timing out mid-restore."""

    def __init__(self, bucket: str, client: Any, budget: int) -> None:
        super().__init__(bucket, client)
        self.budget = budget

    def copy_version(self, *args: Any, **kwargs: Any) -> None:
        if self.budget == 0:
            raise Interrupted()
        self.budget -= 1
        super().copy_version(*args, **kwargs)


def all_versions(s3, bucket):
    out = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        out |= {(v["Key"], v["VersionId"]) for v in page.get("Versions", []) + page.get("DeleteMarkers", [])}
    return out


def current_digest(s3, bucket, repo, tag):
    body = s3.get_object(Bucket=bucket, Key=LAYOUT.key(TagCurrentLink(repo, tag)))["Body"].read()
    return body.decode()


def incident(s3, bucket):
    """v1 pushed, v2 pushed over it, then v1's blobs and revision swept (delete markers)."""
    w = RegistryWriter(s3, bucket)
    v1 = push_image(w, "app", "1", "v1")
    v2 = push_image(w, "app", "1", "v2")
    for blob in (b"cfg-v1", b"layer-v1"):
        w.delete(BlobData(Digest.of(blob)))
    w.delete(BlobData(v1))
    w.delete(RevisionLink("app", v1))
    return v1, v2


def test_interrupted_after_every_k_writes_then_rerun_completes():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="probe")
        s3.put_bucket_versioning(Bucket="probe", VersioningConfiguration={"Status": "Enabled"})
        incident(s3, "probe")
        total = len(plan_restore(S3Store("probe", s3), LAYOUT, "app", "1", previous=1)[0].operations)
    assert total == 5  # 3 blobs, revision link, current link
    for k in range(total):
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket="reg")
            s3.put_bucket_versioning(Bucket="reg", VersioningConfiguration={"Status": "Enabled"})
            v1, v2 = incident(s3, "reg")
            # Given a restore that dies after k writes
            plan, _ = plan_restore(S3Store("reg", s3), LAYOUT, "app", "1", previous=1)
            with pytest.raises(Interrupted):
                apply_plan(FailingStore("reg", s3, budget=k), plan)
            # Then the tag has not moved: it never points at an incomplete image
            assert current_digest(s3, "reg", "app", "1") == str(v2)
            # When the same restore runs again, it completes with the remaining writes
            again, _ = plan_restore(S3Store("reg", s3), LAYOUT, "app", "1", to=str(v1))
            assert len(again.operations) == total - k
            apply_plan(S3Store("reg", s3), again)
            assert current_digest(s3, "reg", "app", "1") == str(v1)
            # and a finished restore run again changes nothing
            done, _ = plan_restore(S3Store("reg", s3), LAYOUT, "app", "1", to=str(v1))
            assert done.operations == []


def test_restore_role_never_deletes(s3, bucket):
    incident(s3, bucket)
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))
    plan, _ = plan_restore(store, LAYOUT, "app", "1", previous=1)
    apply_plan(store, plan)
    assert set(store.requests.by_operation) <= {"ListObjectVersions", "GetObject", "CopyObject"}


def test_naive_and_out_of_range_times_are_refused(s3, bucket):
    from regvault.restore.targets import parse_time

    for text in ("2026-11-20T10:00:00", "2026-13-01T00:00:00Z", "", "10:00"):
        with pytest.raises(InvalidInput):
            parse_time(text)
    assert parse_time("2026-11-20T11:00:00+01:00").isoformat() == "2026-11-20T10:00:00+00:00"


operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(0, 4)),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("purge"), st.integers(0, 50)),
    ),
    min_size=2,
    max_size=10,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations, previous=st.integers(1, 2))
def test_every_version_present_before_a_restore_is_present_after(ops, previous):
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="prop")
        s3.put_bucket_versioning(Bucket="prop", VersioningConfiguration={"Status": "Enabled"})
        w = RegistryWriter(s3, "prop")
        push_image(w, "app", "t", "seed")
        for op, n in ops:
            keys = sorted({k for k, _ in all_versions(s3, "prop")})
            if op == "push":
                push_image(w, "app", "t", f"img{n}")
            elif op == "delete":
                s3.delete_object(Bucket="prop", Key=keys[n % len(keys)])
            else:
                key = keys[n % len(keys)]
                versions = s3.list_object_versions(Bucket="prop", Prefix=key)
                entries = versions.get("Versions", []) + versions.get("DeleteMarkers", [])
                if entries:
                    s3.delete_object(Bucket="prop", Key=key, VersionId=entries[-1]["VersionId"])
        before = all_versions(s3, "prop")
        store = S3Store("prop", s3)
        try:
            plan, _ = plan_restore(store, LAYOUT, "app", "t", previous=previous)
        except InvalidInput:
            event("no target")
            return  # not enough history, or no such tag left: nothing written
        finally:
            assert all_versions(s3, "prop") == before  # planning writes nothing
        event("restorable" if plan.restorable else "not restorable")
        if plan.restorable:
            apply_plan(store, plan)
            after = all_versions(s3, "prop")
            assert before <= after
            assert len(after - before) == len(plan.operations)
            assert current_digest(s3, "prop", "app", "t") == str(plan.targets[0].digest)
            replan, _ = plan_restore(S3Store("prop", s3), LAYOUT, "app", "t", to=str(plan.targets[0].digest))
            assert replan.operations == []
        else:
            with pytest.raises(NotRestorable):
                apply_plan(store, plan)
            assert all_versions(s3, "prop") == before


def test_objects_above_the_single_copy_limit_use_the_managed_multipart_copy(s3, bucket, monkeypatch):
    import regvault.aws.s3 as aws

    # Given a copy limit lowered to 1 MiB so that a 6 MiB object takes the multipart path
    monkeypatch.setattr(aws, "MAX_SINGLE_COPY", 1024 * 1024)
    body = bytes(range(256)) * (6 * 4096)
    s3.put_object(Bucket=bucket, Key="big", Body=body)
    first = s3.list_object_versions(Bucket=bucket, Prefix="big")["Versions"][0]["VersionId"]
    s3.put_object(Bucket=bucket, Key="big", Body=b"overwritten")
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))
    store.copy_version("big", "big", first, size=len(body))
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == body
    assert "UploadPartCopy" in store.requests.by_operation  # really the multipart path
    assert len(s3.list_object_versions(Bucket=bucket, Prefix="big")["Versions"]) == 3
