"""Every entry of tests/data/bad_input.json: one clear line and exit 2 (or a finding), no crash, no write."""

import json
from pathlib import Path

import boto3
import pytest

from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.cli.main import main
from regvault.errors import InvalidInput
from regvault.images.manifests import OCI_INDEX
from regvault.lambda_edge.events import AuditEvent, CatalogEvent, RestoreEvent, parse_event
from regvault.storage.digest import Digest
from regvault.storage.layout import (
    BlobData,
    LayerLink,
    RegistryLayout,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
)
from regvault.storage.reference import Reference

from .builders import RegistryWriter, oci_manifest, push_image

CORPUS = json.loads((Path(__file__).resolve().parents[1] / "data" / "bad_input.json").read_text())
LAYOUT = RegistryLayout("")


def versions(s3, bucket):
    out = s3.list_object_versions(Bucket=bucket)
    return {(v["Key"], v["VersionId"]) for v in out.get("Versions", []) + out.get("DeleteMarkers", [])}


@pytest.fixture
def registry(s3, bucket):
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "v1", "a")
    push_image(w, "team/app", "v1", "b")
    return w


@pytest.mark.parametrize("text", CORPUS["references"])
def test_bad_references(text, registry, s3, bucket, capsys):
    with pytest.raises(InvalidInput) as info:
        Reference.parse(text)
    assert "\n" not in str(info.value)
    before = versions(s3, bucket)
    if text.startswith("-"):  # argparse takes it for an option: its usage error, exit 2
        with pytest.raises(SystemExit) as exit_info:
            main(["restore", text, "--previous", "--apply", "--bucket", bucket])
        assert exit_info.value.code == 2 and "error:" in capsys.readouterr().err
    else:
        assert main(["restore", text, "--previous", "--apply", "--bucket", bucket]) == 2
        err = capsys.readouterr().err
        assert err.startswith("regvault: error: ") and err.count("\n") == 1
    assert versions(s3, bucket) == before


@pytest.mark.parametrize("text", CORPUS["digests"])
def test_bad_digests(text, registry, s3, bucket, capsys):
    before = versions(s3, bucket)
    assert main(["restore", "team/app:v1", "--to", text, "--apply", "--bucket", bucket]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert versions(s3, bucket) == before


@pytest.mark.parametrize("text", CORPUS["timestamps"])
def test_bad_timestamps(text, registry, s3, bucket, capsys):
    before = versions(s3, bucket)
    assert main(["restore", "team/app:v1", "--at", text, "--apply", "--bucket", bucket]) == 2
    err = capsys.readouterr().err
    assert err.startswith("regvault: error: ") and err.count("\n") == 1
    assert versions(s3, bucket) == before


@pytest.mark.parametrize(
    ("model", "event"),
    [(RestoreEvent, e) for e in CORPUS["restore_events"]]
    + [(AuditEvent, e) for e in CORPUS["audit_events"]]
    + [(CatalogEvent, e) for e in CORPUS["catalog_events"]],
)
def test_bad_lambda_events(model, event):
    with pytest.raises(InvalidInput) as info:
        model.from_event(event) if model is AuditEvent else parse_event(model, event)
    assert "\n" not in str(info.value)


def _damage(case, s3, bucket, w):
    layer = Digest.of(b"layer-b")
    manifest_key = None
    current = s3.get_object(Bucket=bucket, Key=LAYOUT.key(TagCurrentLink("team/app", "v1")))["Body"].read()
    top = Digest.parse(current.decode())
    body = case.get("body", "")
    if case["target"] == "layer-link":
        w.put(LayerLink("team/app", layer), body.replace("@digest", str(layer)).encode())
    elif case["target"] == "tag-link":
        w.put(TagCurrentLink("team/app", "v1"), body.encode())
    elif case["target"] == "manifest":
        manifest_key = LAYOUT.key(BlobData(top))
        full = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=full[: len(full) // 2])
    elif case["target"] == "manifest-fresh":
        data = b" " * case["size"] if "size" in case else body.encode("latin-1")
        digest = Digest.of(data)
        w.put(BlobData(digest), data)
        for entity in (RevisionLink("team/app", digest), TagIndexLink("team/app", "v1", digest)):
            w.put(entity, digest.link_body())
        w.put(TagCurrentLink("team/app", "v1"), digest.link_body())
    elif case["target"] == "index-cycle":
        fake = Digest.of(b"cycle")
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_INDEX, "digest": str(fake), "size": 10}],
            }
        ).encode()
        digest = Digest.of(index)
        for d in (digest, fake):
            w.put(BlobData(d), index)
            w.put(RevisionLink("team/app", d), d.link_body())
        w.put(TagIndexLink("team/app", "v1", digest), digest.link_body())
        w.put(TagCurrentLink("team/app", "v1"), digest.link_body())
    elif case["target"] == "unknown-key":
        s3.put_object(
            Bucket=bucket, Key=LAYOUT.prefix + "repositories/team/app/_manifests/odd/file", Body=b"x"
        )
    assert oci_manifest  # the builders' manifest helper is what push_image wrote


@pytest.mark.parametrize("case", CORPUS["bucket_content"], ids=[c["case"] for c in CORPUS["bucket_content"]])
def test_bucket_content_a_broken_registry_could_leave(case, registry, s3, bucket):
    _damage(case, s3, bucket, registry)
    before = versions(s3, bucket)
    report = run_audit(S3Store(bucket, boto3.client("s3", region_name="us-east-1")), LAYOUT, AuditRequest())
    assert case["code"] in {f.code for f in report.findings}, [f.code for f in report.findings]
    assert all("\n" not in f.message for f in report.findings)
    assert versions(s3, bucket) == before  # the audit never writes to the registry bucket
