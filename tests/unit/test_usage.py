"""regvault usage: totals that match the bucket, per-repository rows that add up, what-if windows."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from regvault.aws.s3 import S3Store
from regvault.cli.main import main
from regvault.errors import InvalidInput
from regvault.storage.layout import RegistryLayout
from regvault.usage.prices import price_for
from regvault.usage.usecase import UsageRequest, registry_usage

from . import test_gc_plan

registry = test_gc_plan.registry  # the fixture: app (an overwritten tag, a referrer), multi (an index), other


def _bucket_bytes(s3, bucket):
    current = noncurrent = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            if v["IsLatest"]:
                current += v["Size"]
            else:
                noncurrent += v["Size"]
    return current, noncurrent


def test_totals_match_the_bucket_and_rows_add_up(registry, s3, bucket):
    store, layout, _ = registry
    # some upload scratch, written and delete-marked as a push does
    key = f"{layout.repository_prefix('app')}_uploads/u1/data"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 100)
    s3.delete_object(Bucket=bucket, Key=key)
    s3.put_object(Bucket=bucket, Key=f"{layout.repository_prefix('app')}_uploads/u2/data", Body=b"y" * 50)
    doc = registry_usage(store, layout, UsageRequest())
    t = doc["totals"]
    assert (t["stored_current_bytes"], t["stored_noncurrent_bytes"]) == _bucket_bytes(s3, bucket)
    assert t["upload_scratch_bytes"] == 150 and t["orphan_blob_bytes"] == len(b"orphan")
    rows = doc["repositories"]
    assert set(rows) == {"app", "multi", "other"}
    # unique + apportioned shared bytes add up to the live bytes of the whole registry
    assert abs(sum(r["unique_bytes"] + r["shared_bytes"] for r in rows.values()) - t["live_bytes"]) <= len(
        rows
    )
    # the overwritten image's config is kept by app's history only; its layer is live in "other"
    old_config = len(b"cfg-old")
    assert rows["app"]["history_only_bytes"] >= old_config
    assert rows["other"]["shared_bytes"] == 0 and rows["other"]["unique_bytes"] == rows["other"]["live_bytes"]
    assert doc["monthly_usd"]["total"] >= 0 and doc["price"]["source"] == "S3 Standard, us-east-1"


def test_what_if_another_recovery_window(registry):
    store, layout, _ = registry
    month_later = datetime.now(UTC) + timedelta(days=30)
    short = registry_usage(store, layout, UsageRequest(recovery_days=7, now=month_later))
    long = registry_usage(store, layout, UsageRequest(recovery_days=60, now=month_later))
    assert short["what_if"]["stored_noncurrent_bytes"] == 0  # every version went noncurrent 30 days ago
    assert long["what_if"]["stored_noncurrent_bytes"] == long["totals"]["stored_noncurrent_bytes"] > 0


def test_prices_and_bad_input():
    assert price_for("eu-central-1", None) == (0.0245, "S3 Standard, eu-central-1")
    assert price_for("xx-nowhere-1", None)[1].endswith("(no price shipped for xx-nowhere-1)")
    assert price_for(None, 0.01) == (0.01, "given")
    with pytest.raises(InvalidInput, match="between 0 and 10"):
        price_for(None, 50)
    with pytest.raises(InvalidInput, match="recovery-days"):
        UsageRequest(recovery_days=0)
    with pytest.raises(InvalidInput):
        UsageRequest(repository="Bad Name")


def test_the_usage_command(registry, capsys):
    assert main(["usage", "--bucket", "reg"]) == 0
    out = capsys.readouterr().out
    assert "app" in out and "monthly: $" in out and "HISTORY ONLY" in out
    assert main(["usage", "app", "--format", "json", "--bucket", "reg", "--recovery-days", "30"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["repositories"]) == {"app"} and doc["what_if"]["recovery_days"] == 30
    assert main(["usage", "--format", "markdown", "--bucket", "reg"]) == 0
    assert "| repository | live |" in capsys.readouterr().out
    assert main(["usage", "nope", "--bucket", "reg"]) == 2
    assert "no repository 'nope'" in capsys.readouterr().err
    assert main(["usage", "--recovery-days", "0", "--bucket", "reg"]) == 2


def test_usage_writes_nothing(registry, s3, bucket):
    _ = registry
    before = _bucket_bytes(s3, bucket), s3.list_object_versions(Bucket=bucket)["Versions"]
    registry_usage(S3Store(bucket, s3), RegistryLayout(""), UsageRequest())
    assert (_bucket_bytes(s3, bucket), s3.list_object_versions(Bucket=bucket)["Versions"]) == before


def test_the_audit_report_carries_usage_from_its_own_listing(registry):
    from regvault.audit.run import AuditRequest
    from regvault.audit.usecase import audit_registry
    from regvault.reports.render import to_html, to_markdown

    store, layout, _ = registry
    # When the audit runs, with and without its usage section
    without = S3Store(store.bucket, store.client)
    plain = audit_registry(without, layout, AuditRequest(usage=False)).report
    counted = S3Store(store.bucket, store.client)
    report = audit_registry(counted, layout, AuditRequest(price_region="eu-central-1")).report
    # Then its usage equals what `regvault usage` computes, per repository and in total
    alone = registry_usage(store, layout, UsageRequest(region="eu-central-1"))
    assert report.usage is not None and plain.usage is None
    assert report.usage["repositories"] == alone["repositories"]
    for name in ("stored_current_bytes", "stored_noncurrent_bytes", "orphan_blob_bytes", "live_bytes"):
        assert report.usage["totals"][name] == alone["totals"][name], name
    assert report.usage["price"]["source"] == "S3 Standard, eu-central-1"
    # at no extra request: the same listing and manifest reads as the audit without it
    assert report.summary["s3_requests"] == plain.summary["s3_requests"]
    # the JSON carries it, the Markdown has a table, the HTML a chart with one bar per repository
    assert report.as_dict()["usage"]["repositories"]["app"] == alone["repositories"]["app"]
    assert "usage" not in plain.as_dict()
    markdown = to_markdown(report)
    assert "## Storage and cost" in markdown and "| app |" in markdown.split("## Storage and cost")[1]
    page = to_html(report)
    chart = page.split('aria-label="storage per repository"')[1].split("</svg>")[0]
    assert all(f">{name}</text>" in chart for name in ("app", "multi", "other"))
    assert "app: unique" in chart and "history only" in chart
    assert "Storage and cost" not in to_html(plain)
