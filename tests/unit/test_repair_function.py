"""AutoRepair: the scheduled audit (read-only) hands broken, recoverable images to the RepairFunction,
which repairs them in place, audits again and reports before and after on SNS; its role is the
restore role."""

import json

import pytest

from regvault.aws.services import FunctionInvoker
from regvault.errors import InvalidInput
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, LayerLink, RegistryLayout

from .builders import LambdaContext, RegistryWriter, alert_inbox, load_handler, push_image, sample_event
from .test_template import functions


@pytest.fixture
def stack(s3, bucket, monkeypatch):
    """The AuditFunction with AutoRepair on, its asynchronous invocation of the RepairFunction delivered
    to the real handler (as Lambda would, once)."""
    s3.create_bucket(Bucket="reports")
    topic, sqs, queue = alert_inbox()
    env = {"REGVAULT_BUCKET": bucket, "REPORTS_BUCKET": "reports", "ALERT_TOPIC_ARN": topic}
    repair = load_handler("repair", monkeypatch, env)
    audit = load_handler("audit", monkeypatch, {**env, "REPAIR_FUNCTION": "stack-RepairFunction-x"})
    invoked = []

    class Deliver:
        def __init__(self, name):
            self.name = name

        def invoke_async(self, payload):
            invoked.append((self.name, payload))
            invoked.append(repair.handler(json.loads(json.dumps(payload)), LambdaContext("RepairFunction")))
            return 202

    import regvault.lambda_edge.healing as healing

    monkeypatch.setattr(healing, "FunctionInvoker", Deliver)
    return audit, repair, invoked, sqs, queue


def _messages(sqs, queue):
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages") or []
        if not got:
            return out
        out += [json.loads(m["Body"]) for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])


def test_the_scheduled_audit_hands_broken_images_to_self_healing(stack, s3, bucket):
    audit, _, invoked, sqs, queue = stack
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1.0", "a")
    # clean: nothing handed over
    result = audit.handler(sample_event("audit-scheduled.json"), LambdaContext("AuditFunction"))
    assert result["healing"] is False and invoked == []
    # a layer and its link delete-marked: recoverable from S3 versions
    layer = Digest.of(b"layer-a")
    w.delete(BlobData(layer))
    w.delete(LayerLink("team/app", layer))
    result = audit.handler(sample_event("audit-scheduled.json"), LambdaContext("AuditFunction"))
    assert result["healing"] is True and result["summary"]["errors"] == 2
    (name, payload), healed = invoked
    assert name == "stack-RepairFunction-x" and payload == {"heal": True, "reason": "scheduled audit"}
    assert healed["applied"] and healed["summary"]["copied"] == 2 and healed["errors_after"] == 0
    # the notices: the audit's alert, then self-healing's before and after
    subjects = [m["Subject"] for m in _messages(sqs, queue)]
    assert subjects == ["regvault: 2 error(s) in registry bucket " + bucket, subjects[1]]
    assert "repaired 1 image(s), 0 error(s) left" in subjects[1]
    # the next audit is clean and hands nothing over
    invoked.clear()
    result = audit.handler(sample_event("audit-scheduled.json"), LambdaContext("AuditFunction"))
    assert result["summary"]["errors"] == 0 and result["healing"] is False and invoked == []


def test_an_unrecoverable_image_is_not_handed_over(stack, s3, bucket):
    audit, _, invoked, _, _ = stack
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1.0", "a")
    key = RegistryLayout("").key(BlobData(Digest.of(b"layer-a")))
    for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"]:
        s3.delete_object(Bucket=bucket, Key=key, VersionId=v["VersionId"])
    result = audit.handler(sample_event("audit-scheduled.json"), LambdaContext("AuditFunction"))
    assert result["summary"]["errors"] == 1 and result["healing"] is False and invoked == []


def test_repair_events_on_demand_and_bad_ones(stack, s3, bucket):
    _, repair, _, _, _ = stack
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1.0", "a")
    w.delete(BlobData(Digest.of(b"layer-a")))
    plan = repair.handler(sample_event("repair-plan.json"), LambdaContext("RepairFunction"))
    assert plan["applied"] is False and plan["images"][0]["status"] == "planned"
    for bad in ({"apply": "yes"}, {"repository": "Bad Name"}, {"heal": True, "extra": 1}):
        with pytest.raises(InvalidInput):
            repair.handler(bad, LambdaContext("RepairFunction"))


def test_the_invoker_sends_an_asynchronous_invocation():
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("lambda", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "invoke",
            {"StatusCode": 202},
            {"FunctionName": "fn", "InvocationType": "Event", "Payload": b'{"heal": true}'},
        )
        assert FunctionInvoker("fn", client).invoke_async({"heal": True}) == 202


def test_auto_repair_is_opt_in_and_the_repair_role_is_the_restore_role(template):
    assert template["Parameters"]["AutoRepair"]["Default"] == "false"
    fns = functions(template)
    assert fns["RepairFunction"]["Properties"]["Policies"] == fns["RestoreFunction"]["Properties"]["Policies"]
    for name in ("AuditFunction", "AuditReduceFunction"):
        props = fns[name]["Properties"]
        assert props["Environment"]["Variables"]["REPAIR_FUNCTION"] == {
            "If": ["AutoRepairOn", {"Ref": "RepairFunction"}, ""]
        }
        invoke = [
            p for p in props["Policies"] if isinstance(p, dict) and "If" in p and p["If"][0] == "AutoRepairOn"
        ]
        assert invoke == [
            {
                "If": [
                    "AutoRepairOn",
                    {"LambdaInvokePolicy": {"FunctionName": {"Ref": "RepairFunction"}}},
                    {"Ref": "AWS::NoValue"},
                ]
            }
        ]
