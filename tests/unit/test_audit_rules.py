"""Audit rules on registry states the real registry does not produce on demand (built in moto)."""

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from regvault.audit.posture import posture_findings
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.errors import InvalidInput
from regvault.images.manifests import OCI_INDEX
from regvault.storage.digest import Digest
from regvault.storage.layout import (
    BlobData,
    RegistryLayout,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    UploadObject,
)
from regvault.storage.store import BucketPosture

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")


def run(bucket, **kwargs):
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))
    return run_audit(store, LAYOUT, AuditRequest(**kwargs))


def codes(report):
    return sorted(f.code for f in report.findings if f.code not in POSTURE)


POSTURE = {"INSECURE_TRANSPORT_ALLOWED", "BUCKET_NOT_ENCRYPTED", "PUBLIC_ACCESS_NOT_BLOCKED"}


def put_manifest(w, repo, tag, body: bytes) -> Digest:
    digest = Digest.of(body)
    w.put(BlobData(digest), body)
    w.put(RevisionLink(repo, digest), digest.link_body())
    w.put(TagIndexLink(repo, tag, digest), digest.link_body())
    w.put(TagCurrentLink(repo, tag), digest.link_body())
    return digest


def test_schema1_manifest_is_reported_as_legacy(s3, bucket):
    w = RegistryWriter(s3, bucket)
    layer = b"layer"
    w.put(BlobData(Digest.of(layer)), layer)
    from regvault.storage.layout import LayerLink

    w.put(LayerLink("old", Digest.of(layer)), Digest.of(layer).link_body())
    put_manifest(
        w,
        "old",
        "v1",
        json.dumps({"schemaVersion": 1, "fsLayers": [{"blobSum": str(Digest.of(layer))}]}).encode(),
    )
    assert codes(run(bucket)) == ["MANIFEST_LEGACY_SCHEMA1"]


def test_index_cycle_and_self_reference_do_not_crash(s3, bucket):
    # an index that lists itself can only be built by hand: its digest is in its own body
    w = RegistryWriter(s3, bucket)
    fake = Digest.of(b"x")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_INDEX, "digest": str(fake), "size": 10}],
        }
    ).encode()
    digest = put_manifest(w, "loop", "v1", body)
    # make the child key hold the same bytes: a cycle loop -> fake -> (bytes of loop)
    w.put(BlobData(fake), body)
    w.put(RevisionLink("loop", fake), fake.link_body())
    report = run(bucket)
    found = {(f.code, f.digest) for f in report.findings}
    assert ("MANIFEST_DIGEST_MISMATCH", str(fake)) in found
    assert report.exit_code == 1 and str(digest)


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b'{"hello": "world"}', "unsupported schemaVersion"), (b"\x00\x01binary", "not JSON")],
)
def test_json_that_is_not_a_manifest_is_unparseable(s3, bucket, body, reason):
    w = RegistryWriter(s3, bucket)
    put_manifest(w, "junk", "v1", body)
    report = run(bucket)
    finding = next(f for f in report.findings if f.code == "MANIFEST_UNPARSEABLE")
    assert reason in finding.message and finding.severity == "error"


def test_oversized_manifest_is_not_read_into_memory(s3, bucket):
    w = RegistryWriter(s3, bucket)
    put_manifest(w, "huge", "v1", b" " * (5 * 1024 * 1024))
    finding = next(f for f in run(bucket).findings if f.code == "MANIFEST_UNPARSEABLE")
    assert "4 MiB" in finding.message


def test_stale_uploads_and_unknown_keys_respect_grace(s3, bucket):
    w = RegistryWriter(s3, bucket)
    push_image(w, "app", "v1", "a")
    w.put(UploadObject("app", "0b8e-uuid", "startedat"), b"2026-01-01T00:00:00Z")
    s3.put_object(Bucket=bucket, Key=LAYOUT.prefix + "repositories/app/_manifests/odd/file", Body=b"?")
    assert codes(run(bucket)) == ["UNKNOWN_KEY"]
    report = run(bucket, grace=timedelta(0))
    stale = next(f for f in report.findings if f.code == "STALE_UPLOAD")
    assert stale.key == LAYOUT.prefix + "repositories/app/_uploads/0b8e-uuid/" and stale.severity == "info"


def test_audit_request_validation():
    for kwargs in (
        {"sample": 0},
        {"sample": 1.5},
        {"grace": timedelta(hours=-1)},
        {"page_size": 0},
        {"workers": 0},
    ):
        with pytest.raises(InvalidInput):
            AuditRequest(**kwargs)


def _posture(**kwargs):
    base = {
        "versioning": "Enabled",
        "lifecycle_rules": [],
        "encryption_rules": [{"x": 1}],
        "public_access_block": dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        ),
        "policy": json.dumps(
            {
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ]
            }
        ),
    }
    return BucketPosture(**{**base, **kwargs})


def test_good_posture_has_no_findings():
    findings, window = posture_findings(_posture(), LAYOUT)
    assert findings == [] and window is None


@pytest.mark.parametrize(
    ("change", "code", "severity"),
    [
        ({"versioning": "Suspended"}, "BUCKET_VERSIONING_OFF", "error"),
        ({"versioning": None}, "BUCKET_VERSIONING_OFF", "error"),
        ({"encryption_rules": []}, "BUCKET_NOT_ENCRYPTED", "warning"),
        ({"public_access_block": {"BlockPublicAcls": True}}, "PUBLIC_ACCESS_NOT_BLOCKED", "warning"),
        ({"policy": None}, "INSECURE_TRANSPORT_ALLOWED", "warning"),
        (
            {
                "lifecycle_rules": [
                    {"ID": "x", "Status": "Enabled", "Filter": {"Prefix": ""}, "Expiration": {"Days": 30}}
                ]
            },
            "CURRENT_EXPIRATION",
            "error",
        ),
        ({"unreadable": ["GetBucketPolicy"], "policy": None}, "POSTURE_UNREADABLE", "info"),
    ],
)
def test_posture_findings(change, code, severity):
    findings, _ = posture_findings(_posture(**change), LAYOUT)
    assert [(f.code, f.severity) for f in findings] == [(code, severity)]


def test_recovery_window_from_lifecycle_rules():
    rules = [
        {
            "ID": "uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": "docker/registry/v2/repositories/app/_uploads/"},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
        },
        {
            "ID": "keep",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 90},
        },
        {
            "ID": "off",
            "Status": "Disabled",
            "Filter": {},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 3},
        },
        {
            "ID": "elsewhere",
            "Status": "Enabled",
            "Filter": {"Prefix": "logs/"},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 2},
        },
    ]
    findings, window = posture_findings(_posture(lifecycle_rules=rules), LAYOUT)
    assert window == 90
    assert [f.code for f in findings] == ["NONCURRENT_EXPIRATION"] and "90 days" in findings[0].message


def test_posture_read_from_a_bucket(s3, bucket):
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "keep",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration=dict.fromkeys(
            ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
        ),
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )
    w = RegistryWriter(s3, bucket)
    push_image(w, "app", "v1", "a")
    report = run(bucket)
    assert report.recovery_window_days == 30
    assert sorted(f.code for f in report.findings) == ["INSECURE_TRANSPORT_ALLOWED", "NONCURRENT_EXPIRATION"]
    assert report.finished_at - report.started_at < timedelta(minutes=1)
    assert report.started_at <= datetime.now(UTC)
