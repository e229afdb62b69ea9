"""The GuardFunction: the standard EventBridge S3 event in, the guard's decision out; bad events and
settings are one-line errors; the setup turns on the bucket's EventBridge delivery for it."""

import copy
import json

import pytest

from regvault.errors import InvalidInput
from regvault.lambda_edge.events import GuardSettings
from regvault.setup.provision import ensure_bucket
from regvault.storage.layout import RegistryLayout, TagCurrentLink

from .builders import LambdaContext, RegistryWriter, alert_inbox, load_handler, push_image, sample_event
from .test_template import functions

KEY = RegistryLayout("").key(TagCurrentLink("team/app", "1.0"))


@pytest.fixture
def guard(s3, bucket, monkeypatch):
    topic, sqs, queue = alert_inbox()
    env = {"REGVAULT_BUCKET": bucket, "REGVAULT_PROTECTED_TAGS": "team/*:1.*", "ALERT_TOPIC_ARN": topic}
    return load_handler("guard", monkeypatch, env), sqs, queue


def _event(bucket, version, detail_type="Object Created"):
    event = copy.deepcopy(sample_event("guard-object-created.json"))
    event["detail-type"] = detail_type
    event["detail"]["bucket"]["name"] = bucket
    event["detail"]["object"]["version-id"] = version
    return event


def _latest(s3, bucket):
    versions = s3.list_object_versions(Bucket=bucket, Prefix=KEY)
    return next(v for v in versions.get("Versions", []) + versions.get("DeleteMarkers", []) if v["IsLatest"])


def test_the_handler_puts_a_protected_tag_back_and_notifies(guard, s3, bucket):
    module, sqs, queue = guard
    w = RegistryWriter(s3, bucket)
    push_image(w, "team/app", "1.0", "a")
    first = module.handler(_event(bucket, _latest(s3, bucket)["VersionId"]), LambdaContext("GuardFunction"))
    assert first["action"] == "kept"
    w.delete(TagCurrentLink("team/app", "1.0"))  # a delete marker on the tag's link
    marker = _latest(s3, bucket)["VersionId"]
    result = module.handler(_event(bucket, marker, "Object Deleted"), LambdaContext("GuardFunction"))
    assert result["action"] == "reverted" and result["found"] is None
    assert not _latest(s3, bucket).get("IsDeleteMarker", False) and "ETag" in _latest(s3, bucket)
    notice = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert notice["Subject"] == "regvault: protected tag team/app:1.0 put back"


def test_bad_events_and_settings_are_one_line_errors(guard, bucket):
    module, _, _ = guard
    good = _event(bucket, "v1")
    bad = [
        {**good, "source": "aws.ec2"},
        {**good, "detail-type": "Object Restore Completed"},
        {**good, "detail": {"bucket": {"name": bucket}}},
        _event("another-bucket", "v1"),
        "not an object",
    ]
    for event in bad:
        with pytest.raises(InvalidInput) as caught:
            module.handler(event, LambdaContext("GuardFunction"))
        assert "\n" not in str(caught.value)
    for value in ("app", "app:", "App:v1", "a:b;c"):
        with pytest.raises(InvalidInput, match="protected tag pattern"):
            GuardSettings.from_env({"REGVAULT_BUCKET": "reg", "REGVAULT_PROTECTED_TAGS": value})


def test_the_template_wires_the_guard_and_its_role_deletes_nothing(template):
    fn = functions(template)["GuardFunction"]
    assert fn["Condition"] == "HasProtectedTags" and template["Parameters"]["ProtectedTags"]["Default"] == ""
    pattern = fn["Properties"]["Events"]["TagLinkChanged"]["Properties"]["Pattern"]
    assert pattern["detail-type"] == ["Object Created", "Object Deleted"]
    assert pattern["detail"]["object"]["key"] == [{"wildcard": "*/_manifests/tags/*/current/link"}]
    policies = json.dumps(fn["Properties"]["Policies"])
    assert "Delete" not in policies and "s3:PutObject" in policies
    setup = template["Resources"]["Setup"]["Properties"]
    assert setup["BucketEvents"] == {"If": ["HasProtectedTags", "true", "false"]}


def test_the_setup_sends_object_events_to_event_bridge_and_keeps_other_targets(s3):
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="theirs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket="evented")
    theirs = {"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]}
    s3.put_bucket_notification_configuration(Bucket="evented", NotificationConfiguration=theirs)
    result = ensure_bucket(s3, "evented", "us-east-1", "", 90, events=True)
    config = s3.get_bucket_notification_configuration(Bucket="evented")
    assert "EventBridgeConfiguration" in config and config["QueueConfigurations"][0]["QueueArn"] == arn
    assert any("EventBridge" in c for c in result.changed)
    again = ensure_bucket(s3, "evented", "us-east-1", "", 90, events=True)
    assert not any("EventBridge" in c for c in again.changed)  # converged: nothing to change
    off = ensure_bucket(s3, "evented", "us-east-1", "", 90)
    assert not any("EventBridge" in c for c in off.changed)
