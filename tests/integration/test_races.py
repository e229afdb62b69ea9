"""Audits while the registry is busy: pushes in flight and garbage-collect running are not damage."""

import threading
import time

from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.errors import NoRegistryFound
from regvault.storage.layout import RegistryLayout


def test_audits_during_pushes_and_gc_report_no_damage(scratch):
    env = scratch
    lay = env.layout
    images = [lay.tag(f"race-{i}", lay.image([lay.layer(f"race-{i}", 3 * 1024 * 1024)])) for i in range(4)]
    errors: list = []
    done = threading.Event()

    def busy_registry():
        try:
            for i, image in enumerate(images):
                env.push(image, f"race/app:{i % 2}")  # overwrites too
            env.registry.garbage_collect(delete_untagged=True)
            env.registry.restart()
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=busy_registry)
    worker.start()
    store = S3Store(env.bucket, s3_client(endpoint_url=env.emulator.endpoint_url))
    audits = 0
    damage = []
    while not done.is_set() or audits == 0:
        try:
            report = run_audit(store, RegistryLayout(env.root), AuditRequest())
        except NoRegistryFound:  # the first push has not written anything yet
            time.sleep(0.1)
            continue
        audits += 1
        damage += [(f.code, f.key) for f in report.findings if f.severity == "error"]
    worker.join()
    assert not errors
    assert audits >= 3, audits
    print(f"{audits} audits ran during 4 pushes and a garbage-collect; error findings: {len(damage)}")
    assert damage == [], damage  # in-flight uploads and half-written pushes are not reported as damage
    final = run_audit(store, RegistryLayout(env.root), AuditRequest())
    assert final.exit_code == 0


def test_restore_racing_a_push_never_leaves_an_incomplete_image_nor_loses_the_push(scratch):
    """A skopeo push and a restore of the same tag run at the same time, with varied offsets."""
    import hashlib

    from regvault.errors import RegvaultError
    from regvault.restore.apply import TagMoved, apply_plan
    from regvault.restore.planner import plan_restore

    from .support import all_versions

    env = scratch
    lay = env.layout
    layout = RegistryLayout(env.root)
    old = env.push(lay.tag("rr-old", lay.image([lay.layer("rr-old")])), "race2/app:t")
    outcomes = []
    kept = {(v["Key"], v["VersionId"], v["DeleteMarker"]) for v in all_versions(env)}
    for round_, offset in enumerate((0.0, 0.3, 0.7, 3.0)):
        current = env.push(
            lay.tag(f"rr-cur{round_}", lay.image([lay.layer(f"rr-cur{round_}")])), "race2/app:t"
        )
        incoming = lay.tag(f"rr-new{round_}", lay.image([lay.layer(f"rr-new{round_}", 2 * 1024 * 1024)]))
        store = S3Store(env.bucket, s3_client(endpoint_url=env.emulator.endpoint_url))
        plan, _ = plan_restore(store, layout, "race2/app", "t", to=old)
        pushed: list[str] = []
        pusher = threading.Thread(
            target=lambda out=pushed, image=incoming: out.append(env.push(image, "race2/app:t"))
        )
        pusher.start()
        time.sleep(offset)  # the restore moves the tag before, during or after the push
        try:
            apply_plan(store, plan)
            outcome = "restored"
        except TagMoved:
            outcome = "push detected"
        except RegvaultError as exc:  # pragma: no cover - surfaced below
            outcome = f"error: {exc}"
        pusher.join()
        final = "sha256:" + hashlib.sha256(env.skopeo.inspect_raw("race2/app:t")).hexdigest()
        outcomes.append(f"{outcome} -> {'pushed' if final == pushed[0] else 'restored'}")
        assert outcome in ("restored", "push detected")
        assert final in (old, pushed[0]) and current != final
        if outcome == "push detected":
            assert final == pushed[0]  # the push was not overwritten
        # whatever won, the tag's image is complete, and the other image is still in S3's history
        report = run_audit(store, layout, AuditRequest())
        assert not [f for f in report.findings if f.repository == "race2/app" and f.severity == "error"]
        history = {
            h.digest: h.recoverable for t in report.tags if t.repository == "race2/app" for h in t.history
        }
        assert history.get(pushed[0]) is True and history.get(old) is True
        # versions are only ever added: every version (and delete marker) of the round before is
        # still there, and the round's push and restore wrote new ones
        now = {(v["Key"], v["VersionId"], v["DeleteMarker"]) for v in all_versions(env)}
        assert kept < now, sorted(kept - now)[:5]
        kept = now
    assert any(o.startswith("push detected") for o in outcomes)  # the late restore saw the push
    print(f"restore vs push: {outcomes}")
