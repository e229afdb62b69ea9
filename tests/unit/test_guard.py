"""The guard: a protected tag that moves or is deleted is put back from S3 versions; first pushes,
unprotected tags, its own writes and duplicate, late or out-of-order events are harmless."""

import pytest

from regvault.aws.s3 import S3Store
from regvault.errors import InvalidInput
from regvault.guard.patterns import Protection
from regvault.guard.usecase import MARK_KEY, guard_event
from regvault.storage.digest import Digest, parse_link_body
from regvault.storage.layout import BlobData, RegistryLayout, RevisionLink, TagCurrentLink, TagIndexLink

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")
PROTECT = Protection.parse("app:v*, prod/*:*")


class Inbox:
    def __init__(self):
        self.sent = []

    def publish(self, subject, message):
        self.sent.append((subject, message))


def _key(repo, tag):
    return LAYOUT.key(TagCurrentLink(repo, tag))


def _latest(s3, bucket, key):
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key)
    marker = next((m for m in versions.get("DeleteMarkers", []) if m["IsLatest"]), None)
    return (
        marker["VersionId"] if marker else next(v for v in versions["Versions"] if v["IsLatest"])["VersionId"]
    )


def _points_at(s3, bucket, repo, tag):
    return parse_link_body(s3.get_object(Bucket=bucket, Key=_key(repo, tag))["Body"].read())


def _event(store, s3, bucket, repo, tag, inbox=None, version=None):
    key = _key(repo, tag)
    return guard_event(store, LAYOUT, PROTECT, key, version or _latest(s3, bucket, key), notifier=inbox)


def test_patterns():
    assert PROTECT.protects("app", "v1.0") and PROTECT.protects("prod/api", "latest")
    assert not PROTECT.protects("app", "latest") and not PROTECT.protects("staging/api", "v1")
    assert not Protection.parse("") and not Protection.parse(" , ")
    for bad in ("app", ":v1", "app:", "App:v1", "app:v 1", "app:v1;rm"):
        with pytest.raises(InvalidInput):
            Protection.parse(bad)


def test_an_overwrite_and_a_delete_are_put_back_and_the_rest_is_left_alone(s3, bucket):
    store, w, inbox = S3Store(bucket, s3), RegistryWriter(s3, bucket), Inbox()
    a = push_image(w, "app", "v1.0", "a")
    first = _event(store, s3, bucket, "app", "v1.0", inbox)
    assert first.action == "kept" and first.reason == "the tag's first push"
    # a re-push over the protected tag
    b = push_image(w, "app", "v1.0", "b")
    overwrite = _latest(s3, bucket, _key("app", "v1.0"))
    decision = _event(store, s3, bucket, "app", "v1.0", inbox)
    assert decision.action == "reverted" and decision.found == str(b) and decision.protected == str(a)
    assert _points_at(s3, bucket, "app", "v1.0") == a
    assert inbox.sent[-1][0] == "regvault: protected tag app:v1.0 put back"
    # the guard's own write raises an event: recognised, left alone (no loop)
    own = _latest(s3, bucket, _key("app", "v1.0"))
    assert store.version_metadata(_key("app", "v1.0"), own)[MARK_KEY]
    assert _event(store, s3, bucket, "app", "v1.0", inbox).reason == "the guard's own write"
    # the overwrite's event delivered again, late: nothing to do
    again = _event(store, s3, bucket, "app", "v1.0", inbox, version=overwrite)
    assert again.action == "kept" and _latest(s3, bucket, _key("app", "v1.0")) == own
    # a manifest DELETE through the registry API: the tag's links and the revision link get markers
    for entity in (TagCurrentLink("app", "v1.0"), TagIndexLink("app", "v1.0", a), RevisionLink("app", a)):
        w.delete(entity)
    decision = _event(store, s3, bucket, "app", "v1.0", inbox)
    assert decision.action == "reverted" and decision.found is None and decision.copied == 3
    assert _points_at(s3, bucket, "app", "v1.0") == a
    # an unprotected tag moves freely; a key that is not a tag's link is not the guard's business
    push_image(w, "app", "latest", "c")
    push_image(w, "app", "latest", "d")
    assert _event(store, s3, bucket, "app", "latest", inbox).action == "ignored"
    assert _points_at(s3, bucket, "app", "latest") == Digest.of(_manifest_of(s3, bucket, "app", "latest"))
    blob = LAYOUT.key(BlobData(a))
    assert guard_event(store, LAYOUT, PROTECT, blob, _latest(s3, bucket, blob)).action == "ignored"
    assert len(inbox.sent) == 2  # one notice per put-back, nothing else


def _manifest_of(s3, bucket, repo, tag):
    digest = _points_at(s3, bucket, repo, tag)
    return s3.get_object(Bucket=bucket, Key=LAYOUT.key(BlobData(digest)))["Body"].read()


def test_out_of_order_events_end_on_the_protected_digest(s3, bucket):
    store, w = S3Store(bucket, s3), RegistryWriter(s3, bucket)
    a = push_image(w, "prod/api", "2.0", "a")
    assert _event(store, s3, bucket, "prod/api", "2.0").reason == "the tag's first push"  # pins a
    push_image(w, "prod/api", "2.0", "b")
    first_move = _latest(s3, bucket, _key("prod/api", "2.0"))
    push_image(w, "prod/api", "2.0", "c")
    second_move = _latest(s3, bucket, _key("prod/api", "2.0"))
    # the second move's event arrives first, then the first move's
    guard_event(store, LAYOUT, PROTECT, _key("prod/api", "2.0"), second_move)
    guard_event(store, LAYOUT, PROTECT, _key("prod/api", "2.0"), first_move)
    assert _points_at(s3, bucket, "prod/api", "2.0") == a
    # and any event after that changes nothing more
    for version in (first_move, second_move):
        assert guard_event(store, LAYOUT, PROTECT, _key("prod/api", "2.0"), version).action == "kept"


def test_a_tag_protected_after_it_moved_keeps_the_digest_it_had_then(s3, bucket):
    store, w = S3Store(bucket, s3), RegistryWriter(s3, bucket)
    push_image(w, "app", "v3", "a")
    b = push_image(w, "app", "v3", "b")  # moved before anyone protected it
    first_seen = _latest(s3, bucket, _key("app", "v3"))
    push_image(w, "app", "v3", "c")  # the first move the guard sees
    guard_event(store, LAYOUT, PROTECT, _key("app", "v3"), _latest(s3, bucket, _key("app", "v3")))
    assert _points_at(s3, bucket, "app", "v3") == b  # the digest before that event, not the first one
    assert guard_event(store, LAYOUT, PROTECT, _key("app", "v3"), first_seen).action == "kept"


def test_a_put_back_that_s3_cannot_do_alerts_instead(s3, bucket):
    store, w, inbox = S3Store(bucket, s3), RegistryWriter(s3, bucket), Inbox()
    push_image(w, "app", "v2", "a")
    key = LAYOUT.key(BlobData(Digest.of(b"layer-a")))
    push_image(w, "app", "v2", "b")
    for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])  # the old layer, gone for good
    before = _points_at(s3, bucket, "app", "v2")
    decision = _event(store, s3, bucket, "app", "v2", inbox)
    assert decision.action == "unrecoverable" and "S3 holds no version of" in decision.reason
    assert _points_at(s3, bucket, "app", "v2") == before  # nothing written
    assert inbox.sent[-1][0] == "regvault: protected tag app:v2 could NOT be put back"


def test_the_audit_reports_a_protected_tag_that_was_not_put_back_and_repair_puts_it_back(s3, bucket):
    from regvault.audit.run import AuditRequest, run_audit
    from regvault.repair.usecase import RepairRequest, repair_registry

    store, w = S3Store(bucket, s3), RegistryWriter(s3, bucket)
    a = push_image(w, "app", "v9", "a")
    _event(store, s3, bucket, "app", "v9")  # the first push: pinned
    b = push_image(w, "app", "v9", "b")  # this move's event is lost: the guard never sees it
    request = AuditRequest(usage=False, protected_tags=str(PROTECT))
    report = run_audit(store, LAYOUT, request)
    moved = [f for f in report.findings if f.code == "PROTECTED_TAG_MOVED"]
    assert len(moved) == 1 and moved[0].digest == str(a) and moved[0].severity == "error"
    assert f"regvault restore app:v9 --to {a} --apply" in moved[0].message and str(b)[:19] in moved[0].message
    group = next(g for g in report.images if (g.repository, g.tag) == ("app", "v9"))
    assert group.digest == str(a) and group.command == f"regvault restore app:v9 --to {a} --apply"
    # without the patterns the audit does not judge it; an unprotected move is never reported
    assert not [
        f
        for f in run_audit(store, LAYOUT, AuditRequest(usage=False)).findings
        if f.code == "PROTECTED_TAG_MOVED"
    ]
    # repair puts it back (in the repair's plan like any broken image)
    done = repair_registry(store, LAYOUT, RepairRequest(apply=True, protected_tags=str(PROTECT)))
    assert done.applied and _points_at(s3, bucket, "app", "v9") == a
    assert not [f for f in run_audit(store, LAYOUT, request).findings if f.code == "PROTECTED_TAG_MOVED"]
    with pytest.raises(InvalidInput):
        AuditRequest(protected_tags="no-colon")
