import json

import pytest

from regvault.errors import InvalidInput
from regvault.lambda_edge.events import AuditEvent
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, RegistryLayout

from .builders import LambdaContext, RegistryWriter, alert_inbox, load_handler, push_image, sample_event

CONTEXT = LambdaContext("AuditFunction")


@pytest.fixture
def deployed(s3, bucket, monkeypatch):
    s3.create_bucket(Bucket="reports")
    topic, sqs, queue = alert_inbox()
    env = {"REGVAULT_BUCKET": bucket, "REPORTS_BUCKET": "reports", "ALERT_TOPIC_ARN": topic}
    return load_handler("audit", monkeypatch, env), sqs, queue


def _objects(s3, bucket):
    return {v["Key"]: v["VersionId"] for v in s3.list_object_versions(Bucket=bucket).get("Versions", [])}


def test_scheduled_audit_writes_reports_emits_metrics_and_alerts_on_errors(deployed, s3, bucket, capsys):
    module, sqs, queue = deployed
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1.0", "a")
    before = _objects(s3, bucket)

    # a clean registry: reports, no alert
    result = module.handler(sample_event("audit-scheduled.json"), CONTEXT)
    assert result["alerted"] is False and result["summary"]["errors"] == 0
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="reports")["Contents"])
    assert len(keys) == 7 and keys[0].startswith(f"audits/{bucket}/_/")
    assert {k.rsplit("/", 1)[1] for k in keys} >= {"latest.json", "latest.md", "latest.html"}
    assert f"audits/{bucket}/_/manifest-cache.json.gz" in keys  # what the next run need not read
    assert sqs.receive_message(QueueUrl=queue).get("Messages") is None

    # damage: delete the layer; the next run alerts
    layer = RegistryLayout("").key(BlobData(Digest.of(b"layer-a")))
    assert layer in before
    s3.delete_object(Bucket=bucket, Key=layer)
    result = module.handler({"deep": True, "sample": 1.0}, CONTEXT)
    assert result["alerted"] is True and result["summary"]["errors"] == 1
    report = json.loads(
        s3.get_object(Bucket="reports", Key=result["reports"]["json"].split("/", 3)[3])["Body"].read()
    )
    assert [f["code"] for f in report["findings"] if f["severity"] == "error"] == ["BLOB_MISSING"]
    message = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert "1 error(s)" in message["Subject"] and "BLOB_MISSING" in message["Message"]

    # metrics: findings by severity, versions scanned, S3 requests, duration
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["FindingsError"] for m in emf] == [[0.0], [1.0]]
    # the second run read its one manifest from the cache the first one left
    assert [m["ManifestsFromCache"] for m in emf] == [[0.0], [1.0]]
    assert all(
        {"ObjectVersionsScanned", "S3Requests", "AuditDuration", "FindingsWarning", "ManifestsFromCache"}
        <= m.keys()
        for m in emf
    )

    # the audit never wrote to the registry bucket: the same data versions as before
    after = _objects(s3, bucket)
    assert after == before


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (sample_event("audit-scheduled.json"), (False, 1.0)),
        (sample_event("audit-deep.json"), (True, 0.1)),
        ({}, (False, 1.0)),
        (
            {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {"deep": True}},
            (True, 1.0),
        ),
    ],
)
def test_audit_events(payload, expected):
    parsed = AuditEvent.from_event(payload)
    assert (parsed.deep, parsed.sample) == expected


@pytest.mark.parametrize(
    "payload",
    [
        sample_event("audit-invalid.json"),
        {"sample": 0},
        {"deep": True, "extra": 1},
        "text",
        {"source": "x", "detail": {"sample": 5}},
    ],
)
def test_bad_audit_events_are_one_line_errors(payload):
    with pytest.raises(InvalidInput) as info:
        AuditEvent.from_event(payload)
    assert "\n" not in str(info.value)


# --- in this Lambda or as the state machine: chosen by the size the last audit listed ------------------


@pytest.fixture
def with_machine(s3, bucket, monkeypatch):
    import boto3

    s3.create_bucket(Bucket="reports")
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    machine = sfn.create_state_machine(
        name="regvault-audit",
        definition='{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}',
        roleArn=("arn:aws:iam::123456789012:role/r"),
    )["stateMachineArn"]

    def load(threshold):
        env = {
            "REGVAULT_BUCKET": bucket,
            "REPORTS_BUCKET": "reports",
            "AUDIT_STATE_MACHINE_ARN": machine,
            "DISTRIBUTED_AUDIT_THRESHOLD": str(threshold),
        }
        return load_handler("audit", monkeypatch, env)

    return load, sfn, machine


def test_the_scheduled_audit_hands_a_large_registry_to_the_state_machine(with_machine, s3, bucket):
    load, sfn, machine = with_machine
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1.0", "a")
    module = load(threshold=5)
    # the first audit has nothing to go by: it runs here, and its report says how big the registry is
    first = module.handler(sample_event("audit-scheduled.json"), CONTEXT)
    assert first["mode"] == "single" and "no earlier report" in first["reason"]
    assert first["summary"]["object_versions"] >= 5
    # the next one hands over to the state machine, with the event's options as its input
    second = module.handler({"deep": True, "sample": 0.5}, CONTEXT)
    assert second["mode"] == "distributed" and "threshold 5)" in second["reason"]
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert [e["executionArn"] for e in executions] == [second["execution"]]
    started = sfn.describe_execution(executionArn=second["execution"])
    assert json.loads(started["input"]) == {"deep": True, "sample": 0.5}
    # a registry below the threshold stays here
    small = load(threshold=10**9).handler(sample_event("audit-scheduled.json"), CONTEXT)
    assert small["mode"] == "single" and "threshold 1,000,000,000" in small["reason"]
    # threshold 0: always the state machine, even for a first audit
    s3.delete_object(Bucket="reports", Key=f"audits/{bucket}/_/latest.json")
    always = load(threshold=0).handler(sample_event("audit-scheduled.json"), LambdaContext("next-day"))
    assert always["mode"] == "distributed"


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("AUDIT_SHARDS", "8", "AUDIT_SHARDS must be 16 or 256"),
        ("DISTRIBUTED_AUDIT_THRESHOLD", "-1", "distributed_threshold"),
        ("AUDIT_STATE_MACHINE_ARN", "not-an-arn", "audit_state_machine_arn"),
    ],
)
def test_bad_distributed_settings_fail_at_cold_start(name, value, message):
    from regvault.lambda_edge.events import AuditSettings

    env = {"REGVAULT_BUCKET": "reg", "REPORTS_BUCKET": "reports", name: value}
    with pytest.raises(InvalidInput, match=message):
        AuditSettings.from_env(env)
