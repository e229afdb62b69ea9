"""GcFunction: plan by default, apply and undo on demand, reports to the reports bucket; opt-in schedule."""

import json

import pytest

from regvault.errors import InvalidInput
from regvault.lambda_edge.events import GcEvent

from . import test_gc_plan
from .builders import LambdaContext, alert_inbox, load_handler, sample_event

registry = test_gc_plan.registry  # the fixture
CONTEXT = LambdaContext("GcFunction")


@pytest.fixture
def deployed(registry, s3, monkeypatch):
    s3.create_bucket(Bucket="reports")
    topic, sqs, queue = alert_inbox()
    env = {"REGVAULT_BUCKET": "reg", "REPORTS_BUCKET": "reports", "ALERT_TOPIC_ARN": topic}
    return load_handler("gc", monkeypatch, env), sqs, queue


def _latest(s3):
    return json.loads(s3.get_object(Bucket="reports", Key="gc/reg/_/latest.json")["Body"].read())


def test_scheduled_run_plans_only_and_on_demand_applies_and_undoes(deployed, s3):
    module, sqs, queue = deployed
    scheduled = {"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {"grace_hours": 0}}
    planned = module.handler(scheduled, CONTEXT)
    assert planned["applied"] is False and planned["run_id"] is None and planned["objects"] == 1  # the orphan
    assert _latest(s3)["summary"]["blobs"] == 1
    assert sqs.receive_message(QueueUrl=queue).get("Messages") is None
    applied = module.handler({"apply": True, "delete_untagged": True, "grace_hours": 0}, CONTEXT)
    assert applied["applied"] is True and applied["objects"] == 5
    notice = sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"]
    assert applied["run_id"] in notice
    undone = module.handler({"undo": applied["run_id"], "apply": True}, CONTEXT)
    assert len(undone["restored"]) == 5
    assert _latest(s3)["run_id"] == applied["run_id"]


@pytest.mark.parametrize(
    "event, message",
    [
        ({"apply": "yes"}, "apply"),
        ({"grace_hours": -1}, "grace_hours"),
        ({"undo": "../etc"}, "undo"),
        ({"delete": True}, "Extra inputs"),
    ],
)
def test_bad_events_are_refused(event, message):
    with pytest.raises(InvalidInput, match=message):
        GcEvent.from_event(event)


def test_the_sample_event_plans(deployed):
    module, _, _ = deployed
    assert module.handler(sample_event("gc-plan.json"), CONTEXT)["applied"] is False


def test_the_schedule_is_opt_in_and_plan_only_by_default(template):
    fn = template["Resources"]["GcFunction"]["Properties"]
    params = template["Parameters"]
    assert params["GcSchedule"]["Default"] == "" and params["GcMode"]["Default"] == "plan"
    schedule = fn["Events"]["Scheduled"]["Properties"]
    assert schedule["State"] == {"If": ["HasGcSchedule", "ENABLED", "DISABLED"]}
    assert fn["Environment"]["Variables"]["GC_MODE"] == {"Ref": "GcMode"}
