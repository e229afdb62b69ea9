"""The distributed audit (plan, one worker per key range, reduce) writes the same report as one walk."""

import gzip
import json
from datetime import timedelta

import pytest

from regvault.audit.distributed import ShardItem, audit_shard, check_run, part_key, plan_run, reduce_run
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.errors import InvalidInput
from regvault.storage.layout import RegistryLayout
from regvault.storage.parts import decode_part, encode_part

from .test_sharded_audit import _comparable, generated  # noqa: F401  (the fixture)

REQUEST = AuditRequest(grace=timedelta(0), page_size=100)


@pytest.fixture
def reports(s3):
    s3.create_bucket(Bucket="reports")
    return S3Store("reports", s3)


def distributed(store, layout, reports, shards=16, run="run-1"):
    plan = plan_run(layout, run, shards)
    results = [
        audit_shard(store, layout, run, ShardItem.parse(item), REQUEST, reports) for item in plan["items"]
    ]
    report = reduce_run(store, layout, run, plan["shards"], plan["started_at"], REQUEST, reports)
    return plan, results, report


@pytest.mark.parametrize("shards", [16, 256])
def test_plan_map_reduce_writes_the_single_walks_report(generated, reports, shards):  # noqa: F811
    store, layout = generated
    one = run_audit(store, layout, REQUEST)
    plan, results, report = distributed(store, layout, reports, shards)
    # blob ranges, the part before them, repositories by first character, the part after them
    assert plan["shards"] == shards + 37 == len(results)
    assert _comparable(report) == _comparable(one)
    assert sum(r["object_versions"] for r in results) == report.summary["object_versions"]
    # every worker's listing and part are counted in the report's requests
    assert report.summary["s3_requests"] > one.summary["s3_requests"] + shards


def test_a_missing_or_foreign_part_fails_the_reduce(generated, reports, s3):  # noqa: F811
    store, layout = generated
    plan, _, _ = distributed(store, layout, reports)
    s3.delete_object(Bucket="reports", Key=part_key("run-1", 3))
    with pytest.raises(Exception, match="shard-0003"):
        reduce_run(store, layout, "run-1", plan["shards"], plan["started_at"], REQUEST, reports)
    s3.put_object(Bucket="reports", Key=part_key("run-1", 3), Body=b"not gzip")
    with pytest.raises(InvalidInput, match=r"shard-0003\.json\.gz is not an audit part regvault wrote"):
        reduce_run(store, layout, "run-1", plan["shards"], plan["started_at"], REQUEST, reports)
    # a part of another registry (another root) is refused too
    other = RegistryLayout("elsewhere")
    part = decode_part(reports.get_bytes(part_key("run-1", 4)), "p")[0]
    part.prefix = other.prefix
    s3.put_object(Bucket="reports", Key=part_key("run-1", 3), Body=encode_part(part))
    with pytest.raises(InvalidInput, match="not this registry's"):
        reduce_run(store, layout, "run-1", plan["shards"], plan["started_at"], REQUEST, reports)


def test_a_part_round_trips_and_refuses_what_is_not_one(generated, reports):  # noqa: F811
    store, layout = generated
    run_audit(store, layout, REQUEST)
    audit_shard(store, layout, "r", ShardItem(0, None, None), REQUEST, reports)
    body = reports.get_bytes(part_key("r", 0))
    inventory, requests = decode_part(body, "p")
    again = decode_part(encode_part(inventory, requests), "p")[0]
    assert requests >= 1
    assert {h.key: h.versions for h in again} == {h.key: h.versions for h in inventory}
    assert again.scratch == inventory.scratch and again.object_versions == inventory.object_versions
    doc = json.loads(gzip.decompress(body))
    for broken in (
        {**doc, "format": "other/1"},
        {**doc, "keys": [["k", [["v", "2026-01-01T00:00:00", False, 1, None, True]]]]},  # no time zone
        {k: v for k, v in doc.items() if k != "counts"},
    ):
        with pytest.raises(InvalidInput, match="is not an audit part"):
            decode_part(gzip.compress(json.dumps(broken).encode()), "the part")


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"shard": 1, "after": "b", "through": "a"}, "is not before"),
        ({"shard": -1, "after": None, "through": None}, "shard must be"),
        ({"shard": True, "after": None, "through": None}, "shard must be"),
        ({"shard": 1, "after": "", "through": None}, "S3 keys"),
        ({"shard": 1, "after": None}, "a shard item is"),
        ("0", "a shard item is"),
    ],
)
def test_bad_shard_items_are_refused(raw, message):
    with pytest.raises(InvalidInput, match=message):
        ShardItem.parse(raw)


@pytest.mark.parametrize("run", ["", "a/b", "x" * 81, None, "../up"])
def test_bad_run_ids_are_refused(run):
    with pytest.raises(InvalidInput, match="audit run ids"):
        check_run(run)
