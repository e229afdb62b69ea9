"""The audit with the push journal: a tag write no registry push explains is reported; registry pushes,
regvault's own restores and writes from before the journal began are not."""

from datetime import timedelta

from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.journal.record import Journal, JournalEntry
from regvault.restore.usecase import RestoreRequest, restore_images
from regvault.storage.layout import RegistryLayout, TagCurrentLink

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")


def _pushed(s3, bucket, repo, tag, digest, n):
    """The journal entry the registry's notification gives for the push just written."""
    key = LAYOUT.key(TagCurrentLink(repo, tag))
    latest = next(v for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"] if v["IsLatest"])
    at = latest["LastModified"] + timedelta(milliseconds=300)
    return JournalEntry(
        f"ev-{n}",
        "push",
        repo,
        tag,
        str(digest),
        "application/vnd.oci.image.manifest.v1+json",
        "alice",
        at.isoformat(),
        None,
        "10.0.0.9:5000",
    )


def test_a_write_behind_the_registrys_back_is_reported(s3, bucket):
    store, w = S3Store(bucket, s3), RegistryWriter(s3, bucket)
    a = push_image(w, "app", "1.0", "a")
    entries = [_pushed(s3, bucket, "app", "1.0", a, 1)]
    b = push_image(w, "app", "1.0", "b")
    entries.append(_pushed(s3, bucket, "app", "1.0", b, 2))
    request = AuditRequest(usage=False, journal=Journal(entries))
    # the reports say who set each digest (the HTML timeline's titles, the Markdown's "set by")
    from regvault.reports.render import to_html, to_markdown

    report = run_audit(store, LAYOUT, request)
    history = next(t for t in report.tags if t.tag == "1.0").history
    assert {h.digest: h.by for h in history} == {str(a): "alice", str(b): "alice"}
    assert "| alice |" in to_markdown(report) and " by alice</title>" in to_html(report)
    assert not [
        f for f in run_audit(store, LAYOUT, request).findings if f.code == "TAG_WRITTEN_OUTSIDE_REGISTRY"
    ]
    # someone with the bucket's keys points the tag back at a, straight in S3
    w.put(TagCurrentLink("app", "1.0"), a.link_body())
    found = [
        f for f in run_audit(store, LAYOUT, request).findings if f.code == "TAG_WRITTEN_OUTSIDE_REGISTRY"
    ]
    assert len(found) == 1 and found[0].digest == str(a) and found[0].severity == "warning"
    assert "app:1.0 was set to" in found[0].message and "behind the registry's back" in found[0].message
    # regvault's own restore is marked and not reported
    assert restore_images(store, LAYOUT, RestoreRequest("app", "1.0", to=str(b), apply=True)).applied
    again = [
        f for f in run_audit(store, LAYOUT, request).findings if f.code == "TAG_WRITTEN_OUTSIDE_REGISTRY"
    ]
    assert [f.digest for f in again] == [str(a)]  # still the one direct write, not the restore
    # a delete marker no registry delete explains
    w.delete(TagCurrentLink("app", "1.0"))
    last = [f for f in run_audit(store, LAYOUT, request).findings if f.code == "TAG_WRITTEN_OUTSIDE_REGISTRY"]
    assert any("was deleted at" in f.message for f in last)


def test_writes_from_before_the_journal_began_are_not_judged(s3, bucket):
    store, w = S3Store(bucket, s3), RegistryWriter(s3, bucket)
    push_image(w, "app", "1.0", "a")
    w.put(TagCurrentLink("app", "2.0"), push_image(w, "app", "1.1", "x").link_body())  # old, unexplained
    later = push_image(w, "app", "3.0", "c")
    entry = _pushed(s3, bucket, "app", "3.0", later, 1)
    import datetime as dt

    shifted = (dt.datetime.fromisoformat(entry.at) + timedelta(minutes=30)).isoformat()
    journal = Journal([JournalEntry(**{**entry.as_dict(), "at": shifted})])
    report = run_audit(store, LAYOUT, AuditRequest(usage=False, journal=journal))
    assert not [f for f in report.findings if f.code == "TAG_WRITTEN_OUTSIDE_REGISTRY"]


def test_the_scheduled_audit_reads_the_journal_when_it_is_on(s3, bucket, monkeypatch):
    import json

    from regvault.journal.record import record_batch

    from .builders import LambdaContext, load_handler, sample_event

    s3.create_bucket(Bucket="reports")
    w = RegistryWriter(s3, bucket)
    a = push_image(w, "app", "1.0", "a")
    entry = _pushed(s3, bucket, "app", "1.0", a, 1)
    from datetime import UTC, datetime

    record_batch(S3Store("reports", s3), bucket, "", [entry], datetime.now(UTC))
    w.put(TagCurrentLink("app", "1.0"), push_image(w, "app", "x", "x").link_body())  # behind its back
    env = {"REGVAULT_BUCKET": bucket, "REPORTS_BUCKET": "reports", "REGVAULT_JOURNAL": "true"}
    module = load_handler("audit", monkeypatch, env)
    result = module.handler(sample_event("audit-scheduled.json"), LambdaContext("AuditFunction"))
    key = result["reports"]["json"].split("/", 3)[3]
    report = json.loads(s3.get_object(Bucket="reports", Key=key)["Body"].read())
    codes = [f["code"] for f in report["findings"]]
    assert "TAG_WRITTEN_OUTSIDE_REGISTRY" in codes
    monkeypatch.setenv("REGVAULT_JOURNAL", "false")
    off = load_handler("audit", monkeypatch, {**env, "REGVAULT_JOURNAL": "false"})
    result = off.handler(sample_event("audit-scheduled.json"), LambdaContext("AuditFunction"))
    report = json.loads(
        s3.get_object(Bucket="reports", Key=result["reports"]["json"].split("/", 3)[3])["Body"].read()
    )
    assert "TAG_WRITTEN_OUTSIDE_REGISTRY" not in [f["code"] for f in report["findings"]]
