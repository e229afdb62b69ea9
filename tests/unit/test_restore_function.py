import json

import boto3
import pytest

from regvault.errors import InvalidInput
from regvault.storage.layout import RegistryLayout, TagCurrentLink

from .builders import LambdaContext, RegistryWriter, alert_inbox, load_handler, push_image, sample_event

CONTEXT = LambdaContext("RestoreFunction")


@pytest.fixture
def deployed(s3, bucket, monkeypatch):
    topic, sqs, queue = alert_inbox()
    env = {
        "REGVAULT_BUCKET": bucket,
        "ALERT_TOPIC_ARN": topic,
        "RESTART_REGISTRY_INSTANCE_ID": "i-0123456789abcdef0",
    }
    module = load_handler("restore", monkeypatch, env)
    w = RegistryWriter(s3, bucket)
    first = push_image(w, "team/app", "1.0", "a")
    second = push_image(w, "team/app", "1.0", "b")
    return module, sqs, queue, first, second


def _current(s3, bucket):
    return (
        s3.get_object(Bucket=bucket, Key=RegistryLayout("").key(TagCurrentLink("team/app", "1.0")))["Body"]
        .read()
        .decode()
    )


def test_sample_event_plans_without_writing(deployed, s3, bucket):
    module, sqs, queue, first, second = deployed
    result = module.handler(sample_event("restore-previous.json"), CONTEXT)
    assert result["applied"] is False and result["restorable"] is True
    assert result["targets"][0]["digest"] == str(first)
    assert [op["phase"] for op in result["operations"]] == ["tag-current"]
    assert _current(s3, bucket) == str(second)
    assert sqs.receive_message(QueueUrl=queue).get("Messages") is None


def test_apply_restores_notifies_and_emits_metrics(deployed, s3, bucket, capsys):
    module, sqs, queue, first, _ = deployed
    result = module.handler(
        {"repository": "team/app", "tag": "1.0", "to": str(first), "apply": True}, CONTEXT
    )
    assert result["applied"] is True and result["copied"] == 1
    assert result["registry_restart"] is None  # only links moved: no blob came back, no restart
    assert _current(s3, bucket) == str(first)
    message = json.loads(sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"])
    assert "restored 1 tag(s)" in message["Subject"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert emf[-1]["TagsRestored"] == [1.0] and emf[-1]["ObjectsCopied"] == [1.0]


def test_blobs_brought_back_restart_the_registry_through_ssm(deployed, s3, bucket):
    module, *_ = deployed
    key = RegistryLayout("").key  # delete the first image's layer (a GC would)
    from regvault.storage.digest import Digest
    from regvault.storage.layout import BlobData

    s3.delete_object(Bucket=bucket, Key=key(BlobData(Digest.of(b"layer-a"))))
    result = module.handler({"repository": "team/app", "tag": "1.0", "previous": 1, "apply": True}, CONTEXT)
    assert result["copied"] == 2 and result["registry_restart"]
    ssm = boto3.client("ssm", region_name="us-east-1")
    command = ssm.list_commands(CommandId=result["registry_restart"])["Commands"][0]
    assert command["DocumentName"] == "AWS-RunShellScript"
    assert command["Parameters"]["commands"] == ["docker restart registry"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (sample_event("restore-invalid.json"), "has no UTC offset"),
        ({"repository": "team/app", "tag": "1.0"}, "exactly one of"),
        ({"repository": "team/app", "previous": 1}, "or name a tag"),
        ({"repository": "team/app", "tag": "1.0", "previous": 0}, "greater than or equal to 1"),
        ({"repository": "team/app", "tag": "1.0", "to": "sha256:xyz"}, "invalid digest"),
        ({"repository": "Team", "tag": "1.0", "previous": 1}, "invalid repository name"),
        ({"repository": "team/app", "tag": "1.0", "previous": 1, "apply": "maybe"}, "apply"),
    ],
)
def test_bad_events_are_one_line_errors_and_write_nothing(deployed, s3, bucket, payload, message):
    module, *_ = deployed
    before = s3.list_object_versions(Bucket=bucket)
    with pytest.raises(InvalidInput) as info:
        module.handler(payload, CONTEXT)
    assert message in str(info.value) and "\n" not in str(info.value)
    after = s3.list_object_versions(Bucket=bucket)
    assert [v["VersionId"] for v in after["Versions"]] == [v["VersionId"] for v in before["Versions"]]
