"""The push journal: the registry's notifications through the JournalFunction (a Function URL): the
secret checked, the envelope validated, pushes and deletes kept once, pulls and blobs not, bad
requests refused with nothing written."""

import base64
import copy
import json

import boto3
import pytest

from regvault.aws.s3 import S3Store
from regvault.journal.record import Journal, read_journal

from .builders import LambdaContext, load_handler, sample_event

SECRET = "s3cr3t-for-the-registry-only"


@pytest.fixture
def journal(s3, bucket, monkeypatch):
    s3.create_bucket(Bucket="reports")
    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="journal", SecretString=SECRET
    )["ARN"]
    env = {"REGVAULT_BUCKET": bucket, "REPORTS_BUCKET": "reports", "JOURNAL_SECRET_ARN": arn}
    return load_handler("journal", monkeypatch, env)


def _request(secret=SECRET, body=None, **changes):
    event = copy.deepcopy(sample_event("journal-push.json"))
    event["headers"]["x-regvault-journal-secret"] = secret
    if body is not None:
        event["body"] = body
    event.update(changes)
    return event


def _written(s3):
    return [o["Key"] for o in s3.list_objects_v2(Bucket="reports").get("Contents", [])]


def test_pushes_are_kept_once_and_say_who(journal, s3, bucket):
    answer = journal.handler(_request(), LambdaContext("JournalFunction"))
    assert answer["statusCode"] == 200
    (key,) = _written(s3)
    assert key.startswith(f"journal/{bucket}/_/2026/") or key.startswith(f"journal/{bucket}/_/")
    # the registry retries the same batch: the same object, the same single entry
    assert journal.handler(_request(), LambdaContext("JournalFunction"))["statusCode"] == 200
    assert _written(s3) == [key]
    entries = read_journal(S3Store("reports", s3), bucket, "")
    assert [(e.action, e.repository, e.tag, e.actor) for e in entries] == [
        ("push", "team/app", "1.0", "alice")
    ]
    assert entries[0].source_address == "10.0.0.12:51234" and entries[0].request_id == "b3a1c9d2-aaaa"
    digest = entries[0].digest
    assert Journal(entries).actor_of("team/app", "1.0", digest) == "alice"
    assert Journal(entries).actor_of("team/app", "1.1", digest) is None
    # base64 bodies (as Function URLs pass binary content types) are read too
    body = json.loads(sample_event("journal-push.json")["body"])
    body["events"][0]["id"] = "another-event"
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    assert (
        journal.handler(_request(body=encoded, isBase64Encoded=True), LambdaContext("J"))["statusCode"] == 200
    )
    assert len(_written(s3)) == 2 and len(read_journal(S3Store("reports", s3), bucket, "")) == 2


def test_pulls_and_blob_uploads_are_not_kept(journal, s3):
    body = json.loads(sample_event("journal-push.json")["body"])
    body["events"] = [body["events"][1]]  # the pull
    blob = copy.deepcopy(body["events"][0])
    blob.update(id="blob-1", action="push")
    blob["target"] = {
        "mediaType": "application/octet-stream",
        "digest": "sha256:" + "a" * 64,
        "repository": "team/app",
    }
    body["events"].append(blob)
    answer = journal.handler(_request(body=json.dumps(body)), LambdaContext("JournalFunction"))
    assert answer["statusCode"] == 200 and "nothing to keep" in answer["body"] and _written(s3) == []


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"secret": "wrong"}, 401),
        ({"secret": ""}, 401),
        ({"body": "{not json"}, 400),
        (
            {
                "body": json.dumps(
                    {
                        "events": [
                            {
                                "id": "x",
                                "action": "push",
                                "timestamp": "2026-11-30T10:00:00Z",
                                "target": {"repository": "Bad Name"},
                            }
                        ]
                    }
                )
            },
            400,
        ),
        (
            {
                "body": json.dumps(
                    {
                        "events": [
                            {
                                "id": "x",
                                "action": "explode",
                                "timestamp": "2026-11-30T10:00:00Z",
                                "target": {"repository": "ok"},
                            }
                        ]
                    }
                )
            },
            400,
        ),
        ({"body": json.dumps({"events": "nope"})}, 400),
        ({"body": "x" * (1024 * 1024 + 10)}, 413),
        ({"requestContext": {"http": {"method": "GET"}}}, 405),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_written(journal, s3, change, status, capsys):
    change = dict(change)
    secret = change.pop("secret", SECRET)
    answer = journal.handler(_request(secret=secret, **change), LambdaContext("JournalFunction"))
    assert answer["statusCode"] == status and "\n" not in answer["body"]
    assert _written(s3) == []
    logged = capsys.readouterr().out
    assert SECRET not in logged and "x" * 100 not in logged  # neither the secret nor the body is logged


def test_the_template_wires_the_journal_with_least_privilege(template):
    from .test_template import functions, registry_bucket_actions

    fn = functions(template)["JournalFunction"]
    assert template["Parameters"]["EnableJournal"]["Default"] == "true" and fn["Condition"] == "JournalOn"
    assert fn["Properties"]["FunctionUrlConfig"]["AuthType"] == "NONE"  # the secret header is the gate
    assert not registry_bucket_actions(fn)  # it never touches the registry bucket
    statements = [s for p in fn["Properties"]["Policies"] if "Statement" in p for s in p["Statement"]]
    assert [(s["Action"], s["Resource"]) for s in statements] == [
        (["s3:PutObject"], {"Sub": "${ReportsBucket.Arn}/journal/*"})
    ]
    assert {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": {"Ref": "JournalSecret"}}} in fn[
        "Properties"
    ]["Policies"]
    secret = template["Resources"]["JournalSecret"]["Properties"]
    assert secret["GenerateSecretString"]["PasswordLength"] >= 32
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["JOURNAL_SECRET_ARN"] == {"Ref": "JournalSecret"}  # its ARN, never its value
