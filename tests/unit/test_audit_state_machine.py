"""The AuditStateMachine as deployed (the template's ASL and handlers) runs in moto's Step Functions
interpreter, Distributed Map included, and publishes the report one walk writes."""

import json
import time
from datetime import timedelta

import boto3
import pytest
from moto import mock_aws

from harness.audit_local import deploy_audit
from harness.generator import synthetic
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.storage.layout import RegistryLayout

from .builders import alert_inbox, dispatch_lambda, load_handler, replay, sample_event
from .test_sharded_audit import _comparable

CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@pytest.fixture
def world(monkeypatch):
    with mock_aws(config=CONFIG):
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="reg")
        s3.put_bucket_versioning(Bucket="reg", VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket="reports")
        sim, _ = synthetic(800, seed=5)
        replay(s3, "reg", sim.ops)
        topic, sqs, queue = alert_inbox()
        env = {
            "REGVAULT_BUCKET": "reg",
            "REPORTS_BUCKET": "reports",
            "ALERT_TOPIC_ARN": topic,
            "AUDIT_SHARDS": "16",
        }
        module = load_handler("audit_map", monkeypatch, env)
        deployment = deploy_audit(boto3.client, topic)
        invoked: list[str] = []
        dispatch_lambda(monkeypatch, module, deployment.handlers, invoked)
        yield {
            "s3": s3,
            "module": module,
            "machine": deployment.machine,
            "invoked": invoked,
            "sqs": (sqs, queue),
        }


def run(machine, document, timeout=120):
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    arn = sfn.start_execution(stateMachineArn=machine, name="nightly-1", input=json.dumps(document))[
        "executionArn"
    ]
    deadline = time.monotonic() + timeout
    while (status := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the audit state machine is still running"
        time.sleep(0.1)
    return status


def test_the_state_machine_publishes_the_single_walks_report(world):
    status = run(world["machine"], sample_event("audit-state-machine-input.json"))
    assert status["status"] == "SUCCEEDED", status
    output = json.loads(status["output"])
    assert output["mode"] == "distributed" and output["run"] == "nightly-1"
    # plan, 16 blob ranges + one per repository folder (+ before and after them) listed by the Map's
    # children, then the reduce
    s3 = world["s3"]
    folders = {
        p["Prefix"]
        for p in s3.list_objects_v2(Bucket="reg", Prefix="docker/registry/v2/repositories/", Delimiter="/")[
            "CommonPrefixes"
        ]
    }
    ranges = s3.list_objects_v2(Bucket="reports", Prefix="audit-runs/nightly-1/")["KeyCount"]
    assert ranges > 16 + len(folders)  # nested names (team0/svc-3) are cut a level deeper
    invoked = world["invoked"]
    assert invoked.count("AuditWorkerFunction") == 1 + ranges and invoked[-1] == "AuditReduceFunction"
    latest = json.loads(s3.get_object(Bucket="reports", Key="audits/reg/_/latest.json")["Body"].read())
    one = run_audit(S3Store("reg", s3), RegistryLayout(""), AuditRequest(grace=timedelta(hours=2)))
    mine = _comparable(one)
    theirs = {k: v for k, v in latest.items() if k not in ("started_at", "finished_at")}
    for name in (
        "duration_s",
        "s3_requests",
        "object_versions",
        "delete_markers",
        "upload_folders_not_listed",
    ):
        theirs["summary"].pop(name)
    for name in ("object_versions", "upload_folders_not_listed"):  # what the listing read, as above
        theirs["usage"]["totals"].pop(name)
    assert theirs == json.loads(json.dumps(mine, default=str))


def test_a_failing_range_fails_the_audit_and_alerts(world, monkeypatch):
    module = world["module"]

    def broken(*args, **kwargs):
        raise RuntimeError("listing broke")

    monkeypatch.setattr(module, "audit_shard", broken)
    status = run(world["machine"], {"deep": False, "sample": 1})
    assert status["status"] == "FAILED"
    sqs, queue = world["sqs"]
    messages = sqs.receive_message(QueueUrl=queue).get("Messages") or []
    assert messages and "The audit run nightly-1 failed" in messages[0]["Body"], messages
    # no report: a report must cover the whole bucket. (AWS fails the Map itself, its default tolerating
    # no failed item; moto's interpreter goes on to the reduce, which refuses the missing parts.)
    listed = world["s3"].list_objects_v2(Bucket="reports", Prefix="audits/").get("Contents", [])
    assert listed == []


# --- the ASL's structure: what the emulator cannot hold it to ------------------------------------------


def _definition():
    from harness import ROOT
    from harness.setup_local import load_template

    template = load_template()
    machine = template["Resources"]["AuditStateMachine"]["Properties"]
    return (
        template,
        machine,
        json.loads((ROOT / machine["DefinitionUri"]).read_text()),
        (ROOT / machine["DefinitionUri"]).read_text(),
    )


def test_the_map_is_distributed_bounded_and_keeps_no_results():
    _, _, doc, _ = _definition()
    maps = [s for s in doc["States"].values() if s["Type"] == "Map"]
    assert len(maps) == 1
    (m,) = maps
    assert m["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    # bounded below Lambda's default account concurrency (1,000) and Distributed Map's limit (10,000)
    assert 1 <= m["MaxConcurrency"] <= 100
    # the children's answers are dropped (parts carry the data): no 256 KiB state payload to outgrow
    assert m["ResultPath"] is None
    # no failure is tolerated (the default): a report must cover every key range
    assert not {k for k in m if k.startswith("ToleratedFailure")}
    assert m["ItemSelector"]["item.$"] == "$$.Map.Item.Value"


def test_every_task_retries_lambda_throttling_and_every_failure_alerts():
    _, _, doc, _ = _definition()
    child = next(s for s in doc["States"].values() if s["Type"] == "Map")["ItemProcessor"]["States"]
    tasks = {**{n: s for n, s in doc["States"].items() if s["Type"] == "Task"}, **child}
    lambdas = {n: s for n, s in tasks.items() if s["Resource"].endswith(":lambda:invoke")}
    assert set(lambdas) == {"Plan", "ListKeyRange", "Reduce"}
    for name, state in lambdas.items():
        retried = {e for r in state["Retry"] for e in r["ErrorEquals"]}
        assert {"Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= retried, name
        assert state["OutputPath"] == "$.Payload", name
    for name in ("Plan", "ListKeyRanges", "Reduce"):
        assert [c["Next"] for c in doc["States"][name]["Catch"]] == ["Alert"], name
    assert doc["States"]["Alert"]["Next"] == "Failed" and doc["States"]["Failed"]["Type"] == "Fail"


def test_substitutions_and_the_map_childrens_permissions_match_the_template():
    import re

    template, machine, _, text = _definition()
    assert set(re.findall(r"\$\{(\w+)\}", text)) == set(machine["DefinitionSubstitutions"])
    # a Distributed Map starts its children as executions of its own state machine: the role must allow
    # that on the machine's name (a !Ref to itself would be a circular dependency)
    assert machine["Name"] == {"Sub": "${AWS::StackName}-audit"}
    statements = {s["Sid"]: s for p in machine["Policies"] if "Statement" in p for s in p["Statement"]}
    assert statements["RunMapChildren"]["Action"] == "states:StartExecution"
    assert statements["RunMapChildren"]["Resource"]["Sub"].endswith(":stateMachine:${AWS::StackName}-audit")
    assert set(statements["FollowMapChildren"]["Action"]) == {
        "states:DescribeExecution",
        "states:StopExecution",
    }
    assert statements["FollowMapChildren"]["Resource"]["Sub"].endswith(":execution:${AWS::StackName}-audit/*")
    # the scheduled audit can start it, and knows when to
    audit = template["Resources"]["AuditFunction"]["Properties"]
    assert audit["Environment"]["Variables"]["AUDIT_STATE_MACHINE_ARN"] == {"Ref": "AuditStateMachine"}
    assert {
        "StepFunctionsExecutionPolicy": {"StateMachineName": {"GetAtt": "AuditStateMachine.Name"}}
    } in audit["Policies"]


def test_the_largest_plan_fits_a_state_payload():
    from regvault.audit.distributed import plan_run

    # the longest root a registry can have still gives a plan far below Step Functions' 256 KiB
    plan = plan_run(RegistryLayout("r" * 200), "x" * 80, 256)
    assert plan["shards"] == 256 + 37
    assert len(json.dumps(plan).encode()) < 256 * 1024 / 2
