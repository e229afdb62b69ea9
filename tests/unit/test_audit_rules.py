"""Audit rules on registry states the real registry does not produce on demand (built in moto)."""

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from regvault.audit.posture import posture_findings
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.errors import InvalidInput
from regvault.images.manifests import OCI_INDEX, OCI_MANIFEST
from regvault.storage.digest import Digest
from regvault.storage.layout import (
    BlobData,
    RegistryLayout,
    RevisionLink,
    UploadObject,
)
from regvault.storage.store import BucketPosture

from .builders import RegistryWriter, push_image, put_manifest

LAYOUT = RegistryLayout("")


def run(bucket, **kwargs):
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))
    return run_audit(store, LAYOUT, AuditRequest(**kwargs))


def codes(report):
    return sorted(f.code for f in report.findings if f.code not in POSTURE)


POSTURE = {"INSECURE_TRANSPORT_ALLOWED", "BUCKET_NOT_ENCRYPTED", "PUBLIC_ACCESS_NOT_BLOCKED"}


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


def index_body(*children: Digest, size: int = 10, media: str = OCI_INDEX) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": media, "digest": str(c), "size": size} for c in children],
        }
    ).encode()


def found(report):
    return sorted((f.code, f.repository, f.tag, f.digest) for f in report.findings if f.code not in POSTURE)


def test_a_key_holding_its_parents_bytes_is_a_digest_mismatch_not_a_cycle(s3, bucket):
    # loop -> fake, and fake's key holds loop's bytes: a would-be cycle loop -> fake -> (loop's
    # children) -> fake. Sha256 content addressing cuts it: fake's bytes do not hash to fake, so the
    # audit reports the mismatch and never follows the forged child list.
    w = RegistryWriter(s3, bucket)
    fake = Digest.of(b"x")
    body = index_body(fake)
    loop = put_manifest(w, "loop", "v1", body)
    w.put(BlobData(fake), body)
    w.put(RevisionLink("loop", fake), fake.link_body())
    report = run(bucket)
    assert found(report) == [("MANIFEST_DIGEST_MISMATCH", "loop", "v1", str(fake))]
    [mismatch] = [f for f in report.findings if f.code == "MANIFEST_DIGEST_MISMATCH"]
    assert mismatch.key == LAYOUT.key(BlobData(fake)) and mismatch.recoverable is False
    assert report.exit_code == 1
    [tag] = report.tags
    assert (tag.repository, tag.tag, tag.current) == ("loop", "v1", str(loop))


def test_the_same_child_reached_twice_is_not_a_cycle(s3, bucket):
    # A -> [B, B] and A -> C -> B: B is visited three times, on no path twice
    w = RegistryWriter(s3, bucket)
    b = push_image(w, "diamond", "b", "b")
    size_b = len(s3.get_object(Bucket=bucket, Key=LAYOUT.key(BlobData(b)))["Body"].read())
    c_body = index_body(b, size=size_b, media=OCI_MANIFEST)
    c = put_manifest(w, "diamond", "c", c_body)
    a_body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": media, "digest": str(d), "size": n}
                for media, d, n in (
                    (OCI_MANIFEST, b, size_b),
                    (OCI_MANIFEST, b, size_b),
                    (OCI_INDEX, c, len(c_body)),
                )
            ],
        }
    ).encode()
    put_manifest(w, "diamond", "a", a_body)
    report = run(bucket)
    assert found(report) == [] and report.exit_code == 0


def test_an_index_cycle_is_reported_and_the_audit_ends(s3, bucket):
    """A -> B -> A. With honest sha256 no bucket holds it (A's digest would be inside B's bytes and
    B's inside A's), so it comes from the one input the audit does not hash: the manifest cache of an
    earlier run (``--cache-dir``), here a forged entry saying B's bytes are an index listing A."""
    from regvault.images.manifest_cache import ManifestCache
    from regvault.images.manifests import parse_manifest
    from regvault.images.sources import ManifestRead

    w = RegistryWriter(s3, bucket)
    b_bytes = b"bytes of B, not an index"
    b = Digest.of(b_bytes)
    w.put(BlobData(b), b_bytes)
    w.put(RevisionLink("loop", b), b.link_body())
    a = put_manifest(w, "loop", "v1", index_body(b, size=len(b_bytes)))
    cache = ManifestCache()
    honest = run(bucket, manifest_cache=cache)
    assert found(honest) == [("MANIFEST_UNPARSEABLE", "loop", "v1", str(b))]  # B is not JSON
    [b_key] = [k for k in cache.entries if k[0] == str(b)]
    cache.entries[b_key] = ManifestRead(b_key[1], len(b_bytes), True, parse_manifest(index_body(a)), None)
    report = run(bucket, manifest_cache=ManifestCache.loads(cache.dumps()))
    assert found(report) == [("MANIFEST_UNPARSEABLE", "loop", "v1", str(a))]
    [cycle] = [f for f in report.findings if f.code == "MANIFEST_UNPARSEABLE"]
    assert cycle.message == f"index cycle through {a.short}" and cycle.severity == "error"
    assert report.exit_code == 1


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
