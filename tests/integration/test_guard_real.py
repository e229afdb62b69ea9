"""Protected tags on the real registry: the emulator delivers the bucket's object events (the template's
own rule pattern) to the real GuardFunction handler. A re-push and a manifest DELETE over a protected
tag both end with the old digest served; an unprotected tag and a first push are untouched; an event
delivered twice, or late, changes nothing."""

import time

import pytest

from harness.distclient import DistributionClient
from harness.local import LocalRegistry
from regvault.aws.s3 import S3Store
from regvault.guard.patterns import Protection
from regvault.guard.usecase import guard_event
from regvault.storage.layout import RegistryLayout, TagCurrentLink

from .support import until

PROTECTED = "guarded/*:v*"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    with LocalRegistry(tmp_path_factory.mktemp("guard"), protected_tags=PROTECTED, journal=True) as env:
        # what the setup does when ProtectedTags is set (ensure_bucket(events=True), tested in the unit
        # tests; its TLS-only policy would shut out this plain-http registry): events to EventBridge
        env.s3.put_bucket_notification_configuration(
            Bucket=env.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )
        client = DistributionClient(env.registry.address, env.registry.user, env.registry.password)
        yield env, client


def _versions(env, repo, tag):
    key = RegistryLayout("").key(TagCurrentLink(repo, tag))
    listed = env.s3.list_object_versions(Bucket=env.bucket, Prefix=key)
    return sorted(
        listed.get("Versions", []) + listed.get("DeleteMarkers", []), key=lambda v: v["LastModified"]
    )


def test_a_re_push_and_a_delete_over_a_protected_tag_are_put_back(guarded, tmp_path):
    env, client = guarded
    lay = env.layout
    old = env.push(
        lay.tag("g-old", lay.image([lay.layer("g-base", 2048), lay.layer("g-old")], label="old")),
        "guarded/app:v1",
    )
    time.sleep(1.5)  # the first push's event: pins the digest, writes nothing to the tag
    assert client.digest_of("guarded/app", "v1") == old
    # a re-push of another image over the protected tag: put back within seconds
    new = env.push(
        lay.tag("g-new", lay.image([lay.layer("g-base", 2048), lay.layer("g-new")], label="new")),
        "guarded/app:v1",
    )
    assert new != old
    until("the re-push put back", lambda: client.digest_of("guarded/app", "v1") == old)
    env.skopeo.pull("guarded/app:v1", tmp_path / "after-repush")
    # the notice says who tried it: the registry's user, from the push journal
    notice = until("the guard's notice", lambda: [n for n in env.notices() if "put back" in n["subject"]])
    assert notice[0]["subject"] == "regvault: protected tag guarded/app:v1 put back"
    assert f"by {env.registry.user};" in notice[0]["message"] and new[:19] in notice[0]["message"]
    # a manifest DELETE through the registry API (the tag goes with it): put back too
    assert client.delete_manifest("guarded/app", old) == 202
    until("the delete put back", lambda: client.digest_of("guarded/app", "v1") == old)
    client.pull("guarded/app", "v1")  # manifest and every blob, digests checked
    env.skopeo.pull("guarded/app:v1", tmp_path / "after-delete")


def test_unprotected_tags_and_first_pushes_are_untouched_and_replays_are_harmless(guarded):
    env, client = guarded
    lay = env.layout
    a = env.push(lay.tag("u-a", lay.image([lay.layer("u-a")], label="a")), "guarded/app:latest")
    b = env.push(lay.tag("u-b", lay.image([lay.layer("u-b")], label="b")), "guarded/app:latest")
    first = env.push(lay.tag("u-c", lay.image([lay.layer("u-c")], label="c")), "guarded/app:v2")
    time.sleep(3)  # every event delivered
    assert (a != b) and client.digest_of("guarded/app", "latest") == b  # not protected: moved freely
    assert client.digest_of("guarded/app", "v2") == first  # a first push stays
    assert len(_versions(env, "guarded/app", "v2")) == 1  # and the guard wrote nothing there
    # every event of the protected tag delivered again, oldest first: nothing changes
    store, layout, protection = S3Store(env.bucket, env.s3), RegistryLayout(""), Protection.parse(PROTECTED)
    key = layout.key(TagCurrentLink("guarded/app", "v1"))
    before = _versions(env, "guarded/app", "v1")
    decisions = [guard_event(store, layout, protection, key, v["VersionId"]).action for v in before]
    assert set(decisions) <= {"kept", "ignored"} and _versions(env, "guarded/app", "v1") == before
