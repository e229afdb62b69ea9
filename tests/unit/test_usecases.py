"""The use cases the Lambda handlers and the CLI share: their ports are called in order, only when due."""

import boto3
import pytest

from regvault.audit.run import AuditRequest
from regvault.audit.usecase import audit_registry
from regvault.aws.s3 import S3Store
from regvault.images.manifest_cache import ManifestCache
from regvault.images.usecase import catalog
from regvault.restore.usecase import RestoreRequest, restore_images
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, RegistryLayout, TagCurrentLink

from .builders import RegistryWriter, push_image

LAYOUT = RegistryLayout("")


def _store(bucket):
    return S3Store(bucket, boto3.client("s3", region_name="us-east-1"))


class Log:
    """One list of what every fake port was asked, in order."""

    def __init__(self):
        self.calls = []


class MemoryCache:
    def __init__(self, log, problem=None):
        self.log, self.problem, self.saved = log, problem, None

    def load(self):
        self.log.calls.append("cache.load")
        cache = ManifestCache()
        cache.problem = self.problem
        return cache

    def save(self, cache):
        self.log.calls.append("cache.save")
        self.saved = ManifestCache.loads(cache.dumps())


class Sink:
    bucket = "reports"

    def __init__(self, log):
        self.log, self.keys = log, []

    def put_bytes(self, key, body, content_type):
        self.log.calls.append("sink.put")
        self.keys.append(key)


class Inbox:
    def __init__(self, log):
        self.log, self.messages = log, []

    def publish(self, subject, message):
        self.log.calls.append("publish")
        self.messages.append((subject, message))


class Restarter:
    def __init__(self, log):
        self.log = log

    def restart(self):
        self.log.calls.append("restart")
        return "command-1"


# --- audit ---------------------------------------------------------------------------------------


def test_audit_loads_the_cache_warns_publishes_then_saves_and_the_next_audit_uses_it(s3, bucket):
    push_image(RegistryWriter(s3, bucket), "team/app", "1.0", "a")
    log = Log()
    cache, sink, alerts = MemoryCache(log, problem="stale cache"), Sink(log), Inbox(log)
    warnings = []

    def warn(problem):
        log.calls.append("warn")
        warnings.append(problem)

    outcome = audit_registry(
        _store(bucket), LAYOUT, AuditRequest(), cache=cache, sink=sink, alerts=alerts, warn=warn
    )
    assert log.calls == ["cache.load", "warn"] + ["sink.put"] * 6 + ["cache.save"]
    assert warnings == ["stale cache"] and outcome.cache_problem == "stale cache"
    assert outcome.published is not None and outcome.published["alerted"] is False
    assert outcome.published["reports"]["json"] == f"s3://reports/{sink.keys[0]}"
    assert outcome.report.summary["manifests_from_cache"] == 0 and cache.saved is not None

    # what was saved is what the next audit starts from: its manifest is not read again
    class Saved(MemoryCache):
        def load(self):
            return cache.saved

    again = audit_registry(_store(bucket), LAYOUT, AuditRequest(), cache=Saved(Log()))
    assert again.report.summary["manifests_from_cache"] == 1


def test_audit_without_ports_publishes_nothing_and_alerts_only_with_a_sink(s3, bucket):
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1.0", "a")
    w.delete(BlobData(Digest.of(b"layer-a")))
    log = Log()
    outcome = audit_registry(_store(bucket), LAYOUT, AuditRequest(), alerts=Inbox(log))
    assert outcome.published is None and outcome.cache_problem is None
    assert outcome.report.summary["errors"] == 1 and log.calls == []  # no sink: no report, no alert

    inbox = Inbox(log)
    outcome = audit_registry(_store(bucket), LAYOUT, AuditRequest(), sink=Sink(log), alerts=inbox)
    assert outcome.published["alerted"] is True and len(inbox.messages) == 1
    assert "BLOB_MISSING" in inbox.messages[0][1]


# --- restore -------------------------------------------------------------------------------------


@pytest.fixture
def pushed(s3, bucket):
    w = RegistryWriter(s3, bucket)
    first = push_image(w, "team/app", "1.0", "a")
    second = push_image(w, "team/app", "1.0", "b")
    return w, first, second


def _current(s3, bucket):
    key = LAYOUT.key(TagCurrentLink("team/app", "1.0"))
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def _restore(bucket, log, **request):
    return restore_images(
        _store(bucket),
        LAYOUT,
        RestoreRequest("team/app", "1.0", **request),
        restarter=Restarter(log),
        notifier=Inbox(log),
    )


def test_a_plan_writes_nothing_restarts_nothing_notifies_nobody(s3, bucket, pushed):
    _, first, second = pushed
    log = Log()
    outcome = _restore(bucket, log, to=str(first))
    assert (outcome.applied, outcome.copied, outcome.registry_restart) == (False, 0, None)
    assert outcome.document["targets"][0]["digest"] == str(first)
    assert log.calls == [] and _current(s3, bucket) == str(second)


def test_moving_links_only_notifies_without_a_restart(s3, bucket, pushed):
    _, first, _ = pushed
    log = Log()
    seen = []
    outcome = restore_images(
        _store(bucket),
        LAYOUT,
        RestoreRequest("team/app", "1.0", to=str(first), apply=True),
        restarter=Restarter(log),
        notifier=Inbox(log),
        progress=lambda i, total, need: seen.append((i, total, need.phase)),
    )
    assert (outcome.applied, outcome.copied, outcome.registry_restart) == (True, 1, None)
    assert log.calls == ["publish"] and seen == [(1, 1, "tag-current")]
    assert _current(s3, bucket) == str(first)


def test_blobs_brought_back_restart_the_registry_before_the_notice(s3, bucket, pushed):
    w, first, _ = pushed
    w.delete(BlobData(Digest.of(b"layer-a")))
    log = Log()
    outcome = _restore(bucket, log, previous=1, apply=True)
    assert (outcome.applied, outcome.copied, outcome.registry_restart) == (True, 2, "command-1")
    assert log.calls == ["restart", "publish"]
    assert _current(s3, bucket) == str(first)


def test_a_plan_that_is_not_restorable_is_not_applied_even_when_asked(s3, bucket, pushed):
    _, first, second = pushed
    key = LAYOUT.key(BlobData(Digest.of(b"layer-a")))
    for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])  # gone for good
    log = Log()
    outcome = _restore(bucket, log, to=str(first), apply=True)
    assert outcome.plan.restorable is False and outcome.document["missing"]
    assert (outcome.applied, outcome.copied, outcome.registry_restart) == (False, 0, None)
    assert log.calls == [] and _current(s3, bucket) == str(second)


# --- catalog -------------------------------------------------------------------------------------


def test_a_reused_store_counts_each_listing_s_own_requests(s3, bucket):
    push_image(RegistryWriter(s3, bucket), "team/app", "1.0", "a")
    store = _store(bucket)  # a warm Lambda keeps its store between invocations
    first = catalog(store, LAYOUT)
    second = catalog(store, LAYOUT, "team/app")
    assert first.document["summary"]["s3_requests"] == 2  # one list, one manifest GET
    assert second.document["summary"]["s3_requests"] == 2
    assert store.requests.total == 4
    assert [r.name for r in second.listing.repositories] == ["team/app"]
    assert second.document["bucket"] == bucket
