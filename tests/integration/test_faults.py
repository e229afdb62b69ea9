"""S3 faults (503 SlowDown, 500, connection resets, read timeouts, bodies cut short) injected at a rate:
the audit finds the same things, a restore completes or leaves the tag where it was."""

import hashlib

import pytest

from harness.faults import FaultInjector
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.clients import s3_client
from regvault.aws.s3 import S3Store
from regvault.errors import RegvaultError
from regvault.restore.apply import apply_plan
from regvault.restore.planner import plan_restore
from regvault.storage.layout import RegistryLayout

from .support import all_versions


def store(env, rate=0.0, seed=1, max_attempts=8, **kwargs):
    client = s3_client(endpoint_url=env.emulator.endpoint_url, max_attempts=max_attempts)
    s3 = S3Store(env.bucket, client)
    return s3, (FaultInjector(client, rate, seed=seed, **kwargs) if rate else None)


def essence(report):
    findings = sorted((f.code, f.repository, f.tag, f.digest, f.key, f.recoverable) for f in report.findings)
    tags = sorted(
        (t.repository, t.tag, t.current, tuple((h.digest, h.recoverable) for h in t.history))
        for t in report.tags
    )
    return findings, tags


def test_audit_at_ten_percent_faults_finds_the_same(samples):
    env, _ = samples
    layout = RegistryLayout(env.root)
    clean, _ = store(env)
    baseline = run_audit(clean, layout, AuditRequest(deep=True))
    injected = 0
    for seed in (1, 2, 3):
        faulty, faults = store(env, rate=0.10, seed=seed)
        report = run_audit(faulty, layout, AuditRequest(deep=True))
        assert essence(report) == essence(baseline)
        injected += faults.total
    assert injected >= 5
    print(f"audit: {injected} faults injected over 3 deep audits, findings identical")


def test_persistent_failure_is_one_clear_error(samples):
    env, _ = samples
    faulty, _ = store(env, rate=1.0, max_attempts=2, kinds=("slowdown",))
    with pytest.raises(RegvaultError) as info:
        run_audit(faulty, RegistryLayout(env.root), AuditRequest())
    message = str(info.value)
    assert "SlowDown" in message and "\n" not in message


def served(env, reference):
    return "sha256:" + hashlib.sha256(env.skopeo.inspect_raw(reference)).hexdigest()


READS = ("GetObject", "ListObjectVersions", "HeadObject")
WRITES = ("CopyObject", "PutObject", "CreateMultipartUpload", "UploadPartCopy")


@pytest.mark.parametrize(
    ("seed", "rate", "attempts", "operations", "expected"),
    [
        (4, 0.25, 2, None, None),  # random faults on every call: either outcome, both must be safe
        (2, 0.6, 1, None, None),
        (1, 0.25, 8, READS, "completed"),  # read faults that retries absorb: the restore completes
        (3, 1.0, 1, WRITES, "stopped"),  # every write fails: the restore stops before moving the tag
    ],
    ids=["random-25%", "random-60%", "reads-retried", "writes-fail"],
)
def test_restore_under_faults_completes_or_leaves_the_tag_and_a_rerun_completes(
    scratch, seed, rate, attempts, operations, expected, tmp_path
):
    env = scratch
    lay = env.layout
    tag = f"faults/app:{seed}"
    old = env.push(lay.tag(f"f{seed}a", lay.image([lay.layer(f"f{seed}-a")])), tag)
    new = env.push(lay.tag(f"f{seed}b", lay.image([lay.layer(f"f{seed}-b")])), tag)
    env.registry.garbage_collect(delete_untagged=True)
    env.registry.restart()
    before = {(v["Key"], v["VersionId"]) for v in all_versions(env)}
    layout = RegistryLayout(env.root)
    faulty, faults = store(env, rate=rate, seed=seed, max_attempts=attempts, operations=operations)
    try:
        plan, _ = plan_restore(faulty, layout, "faults/app", str(seed), to=old)
        apply_plan(faulty, plan)
        outcome = "completed"
        assert served(env, tag) == old
    except RegvaultError:
        outcome = "stopped"
        # stopped: the tag still points where it did
        assert served(env, tag) == new
        clean, _ = store(env)
        plan, _ = plan_restore(clean, layout, "faults/app", str(seed), to=old)
        apply_plan(clean, plan)
    assert faults.total >= 1, "no fault was injected into this restore"
    if expected is not None:
        assert outcome == expected, (outcome, dict(faults.injected))
    env.registry.restart()
    assert served(env, tag) == old
    env.skopeo.pull(tag, tmp_path / "pulled")
    assert before <= {(v["Key"], v["VersionId"]) for v in all_versions(env)}
    print(f"restore under faults (seed {seed}): {outcome}, {dict(faults.injected)} injected")
