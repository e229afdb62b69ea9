"""The manifest cache: a second audit reads no manifest version it already knows, and finds the same."""

import json

import boto3

from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.cli.main import main
from regvault.images.manifest_cache import ManifestCache
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, RegistryLayout

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")


def _audit(bucket, cache):
    store = S3Store(bucket, boto3.client("s3", region_name="us-east-1"))
    report = run_audit(store, LAYOUT, AuditRequest(manifest_cache=cache))
    return report, store.requests.by_operation


def _findings(report):
    return [(f.code, f.digest, f.key, f.recoverable) for f in report.findings]


def _registry(s3, bucket):
    w = RegistryWriter(s3, bucket)
    digests = [push_image(w, "team/app", tag, label) for tag, label in (("1", "a"), ("2", "b"), ("1", "c"))]
    digests.append(push_image(w, "base", "latest", "d"))
    return w, digests


def test_second_audit_reads_no_known_manifest_and_finds_the_same(s3, bucket):
    _registry(s3, bucket)
    cache = ManifestCache()
    first, first_calls = _audit(bucket, cache)
    # the cache goes through its file format between runs
    second, second_calls = _audit(bucket, ManifestCache.loads(cache.dumps()))
    assert first_calls["GetObject"] == first.summary["manifests"] == 4
    assert second_calls["GetObject"] == 0
    assert second.summary["manifests_from_cache"] == 4 and second.summary["manifests"] == 4
    assert second_calls["ListObjectVersions"] == first_calls["ListObjectVersions"] == 1
    assert _findings(second) == _findings(first)
    assert [t.as_dict() for t in second.tags] == [t.as_dict() for t in first.tags]


def test_a_new_version_of_a_manifest_is_read_again(s3, bucket):
    w, digests = _registry(s3, bucket)
    cache = ManifestCache()
    _audit(bucket, cache)
    cache = ManifestCache.loads(cache.dumps())
    # someone overwrites a live manifest's bytes in S3 (same key, a new version)
    w.put(BlobData(digests[-1]), b'{"schemaVersion": 2, "corrupt": true}')
    second, calls = _audit(bucket, cache)
    assert calls["GetObject"] == 1  # only the new version
    uncached, _ = _audit(bucket, None)
    assert _findings(second) == _findings(uncached)
    assert any(f.digest == str(digests[-1]) for f in second.findings if f.severity == "error")


def test_unversioned_bucket_is_never_cached(s3):
    s3.create_bucket(Bucket="plain")
    w = RegistryWriter(s3, "plain")
    push_image(w, "team/app", "1", "a")
    cache = ManifestCache()
    _audit("plain", cache)
    assert cache.entries == {}
    _, calls = _audit("plain", cache)
    assert calls["GetObject"] == 1


def test_an_unreadable_cache_is_ignored_not_trusted():
    for data in (
        b"not gzip",
        b"\x1f\x8b\x08\x00garbage",
        __import__("gzip").compress(b'{"format": "other"}'),
    ):
        cache = ManifestCache.loads(data)
        assert cache.entries == {} and "ignored" in cache.problem
    assert ManifestCache.loads(None).problem is None


def test_cli_cache_dir_makes_the_second_audit_cheaper(s3, bucket, tmp_path, capsys):
    _registry(s3, bucket)
    argv = ["audit", "--bucket", bucket, "--format", "json", "--cache-dir", str(tmp_path / "cache")]
    main(argv)
    first = json.loads(capsys.readouterr().out)["summary"]
    main(argv)
    second = json.loads(capsys.readouterr().out)["summary"]
    assert (tmp_path / "cache" / f"{bucket}.manifests.json.gz").exists()
    assert second["s3_requests"] == first["s3_requests"] - first["manifests"]
    assert second["manifests_from_cache"] == first["manifests"]
    # a damaged cache file: one warning line, the audit reads everything and rewrites the file
    (tmp_path / "cache" / f"{bucket}.manifests.json.gz").write_bytes(b"damaged")
    main(argv)
    out, err = capsys.readouterr()
    assert json.loads(out)["summary"]["s3_requests"] == first["s3_requests"]
    assert err.count("\n") == 1 and "manifest cache ignored" in err
    main(argv)
    assert json.loads(capsys.readouterr().out)["summary"]["manifests_from_cache"] == first["manifests"]


def test_cached_entries_round_trip(s3, bucket):
    _registry(s3, bucket)
    cache = ManifestCache()
    _audit(bucket, cache)
    again = ManifestCache.loads(cache.dumps())
    assert again.entries == cache.entries and len(again.entries) == 4
    assert all(isinstance(Digest.parse(key[0]), Digest) for key in again.entries)
