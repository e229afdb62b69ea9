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
)
from regvault.storage.reference import Reference

from .builders import RegistryWriter, oci_manifest, push_image, put_manifest

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
    """Break the bucket as ``case`` says; return where the audit must name it: (digest, key)."""
    layer = Digest.of(b"layer-b")
    current = s3.get_object(Bucket=bucket, Key=LAYOUT.key(TagCurrentLink("team/app", "v1")))["Body"].read()
    top = Digest.parse(current.decode())
    body = case.get("body", "")
    if case["target"] == "layer-link":
        w.put(LayerLink("team/app", layer), body.replace("@digest", str(layer)).encode())
        return str(layer), LAYOUT.key(LayerLink("team/app", layer))
    if case["target"] == "tag-link":
        w.put(TagCurrentLink("team/app", "v1"), body.encode())
        return None, LAYOUT.key(TagCurrentLink("team/app", "v1"))
    if case["target"] == "manifest":
        manifest_key = LAYOUT.key(BlobData(top))
        full = s3.get_object(Bucket=bucket, Key=manifest_key)["Body"].read()
        # what is cut short is the OCI manifest push_image wrote for label "b", byte for byte
        sizes = {Digest.of(b"cfg-b"): len(b"cfg-b"), layer: len(b"layer-b")}
        assert full == oci_manifest(Digest.of(b"cfg-b"), [layer], sizes) and Digest.of(full) == top
        s3.put_object(Bucket=bucket, Key=manifest_key, Body=full[: len(full) // 2])
        return str(top), manifest_key
    if case["target"] == "manifest-fresh":
        data = b" " * case["size"] if "size" in case else body.encode("latin-1")
        digest = put_manifest(w, "team/app", "v1", data)
        return str(digest), LAYOUT.key(BlobData(digest))
    if case["target"] == "index-parent-bytes":
        # an honest index listing ``child``, and child's key holding the index's own bytes
        child = Digest.of(b"child")
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [{"mediaType": OCI_INDEX, "digest": str(child), "size": 10}],
            }
        ).encode()
        put_manifest(w, "team/app", "v1", index)
        w.put(BlobData(child), index)
        w.put(RevisionLink("team/app", child), child.link_body())
        return str(child), LAYOUT.key(BlobData(child))
    assert case["target"] == "unknown-key", case
    key = LAYOUT.prefix + "repositories/team/app/_manifests/odd/file"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    return None, key


@pytest.mark.parametrize("case", CORPUS["bucket_content"], ids=[c["case"] for c in CORPUS["bucket_content"]])
def test_bucket_content_a_broken_registry_could_leave(case, registry, s3, bucket):
    digest, key = _damage(case, s3, bucket, registry)
    before = versions(s3, bucket)
    report = run_audit(S3Store(bucket, boto3.client("s3", region_name="us-east-1")), LAYOUT, AuditRequest())
    assert all("\n" not in f.message for f in report.findings)
    # the damage is named once, where it is, with the reason and whether an older version can mend it
    matches = [f for f in report.findings if f.code == case["code"]]
    assert len(matches) == 1, [(f.code, f.key) for f in report.findings]
    finding = matches[0]
    assert (finding.digest, finding.key, finding.recoverable) == (digest, key, case["recoverable"])
    assert case["message"] in finding.message, finding.message
    if case["code"] != "UNKNOWN_KEY":
        assert (finding.repository, finding.tag, finding.severity) == ("team/app", "v1", "error")
    # and it is the only error: the rest of the registry audits clean
    assert [(f.code, f.key) for f in report.findings if f.severity == "error"] == (
        [(finding.code, finding.key)] if finding.severity == "error" else []
    )
    assert versions(s3, bucket) == before  # the audit never writes to the registry bucket
