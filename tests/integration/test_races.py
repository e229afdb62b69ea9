"""Audits while the registry is busy: pushes in flight and garbage-collect running are not damage."""

import threading
import time

from regvault.audit import AuditRequest, run_audit
from regvault.aws import S3Store, s3_client
from regvault.errors import NoRegistryFound
from regvault.layout import RegistryLayout


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
