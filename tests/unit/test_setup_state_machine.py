"""The Setup state machine, run by moto's ASL interpreter, with each Lambda task dispatched to the real
handler (functions/setup/app.py). Faked only what moto lacks: SSM's describe_instance_information, and a
launch command that fails on the instance."""

import http.server
import io
import json
import threading
import time
import zipfile
from pathlib import Path

import boto3
import pytest
import yaml
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

from regvault import setup_steps

from .builders import CfnLoader, LambdaContext, load_handler

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = {
    "SetupStorageFunction": "storage",
    "SetupSecretsFunction": "secrets",
    "SetupIdentityFunction": "identity",
    "SetupAssociationFunction": "associate",
    "SetupLaunchFunction": "launch",
    "SetupRespondFunction": "respond",
}
SUBSTITUTIONS = {
    "StorageFunctionArn": "SetupStorageFunction",
    "SecretsFunctionArn": "SetupSecretsFunction",
    "IdentityFunctionArn": "SetupIdentityFunction",
    "AssociationFunctionArn": "SetupAssociationFunction",
    "LaunchFunctionArn": "SetupLaunchFunction",
    "RespondFunctionArn": "SetupRespondFunction",
}


class ResponseCatcher(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ResponseCatcher.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cfn_response_url():
    ResponseCatcher.received = []
    server = http.server.HTTPServer(("127.0.0.1", 0), ResponseCatcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/response"
    server.shutdown()


@pytest.fixture
def world(monkeypatch, cfn_response_url):
    """moto with real ASL execution; Lambda invocations go to the real handlers."""
    config = {
        "stepfunctions": {"execute_state_machine": True},
        "lambda": {"use_docker": False},
        "iam": {"load_aws_managed_policies": True},
    }
    with mock_aws(config=config):
        module = load_handler("setup", monkeypatch, {})
        functions = {}
        calls: dict[str, set[str]] = {}
        current = {"name": "SetupTriggerFunction"}
        real_client = module.client

        def recording_client(service, *args, **kwargs):
            made = real_client(service, *args, **kwargs)
            prefix = {"stepfunctions": "states"}.get(service, service)

            def record(event_name="", **_):
                operation = event_name.rsplit(".", 1)[-1]
                calls.setdefault(current["name"], set()).add(f"{prefix}:{operation}")

            made.meta.events.register("before-call", record)
            return made

        monkeypatch.setattr(module, "client", recording_client)

        def invoke(self, function_name, qualifier, body, headers, response_headers):
            name = function_name.rsplit(":", 1)[-1]
            handler = getattr(module, functions[name])
            current["name"] = name
            try:
                return json.dumps(handler(json.loads(body), LambdaContext(name))).encode()
            except Exception as exc:  # what Lambda reports for an unhandled error
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}).encode()

        monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
        iam = boto3.client("iam")
        role = iam.create_role(RoleName="lambda", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as zf:
            zf.writestr("app.py", "")
        lam = boto3.client("lambda")
        arns = {}
        for logical, handler in HANDLERS.items():
            functions[logical] = handler
            arns[logical] = lam.create_function(
                FunctionName=logical,
                Runtime="python3.13",
                Role=role,
                Handler=f"app.{handler}",
                Code={"ZipFile": code.getvalue()},
            )["FunctionArn"]
        definition = (ROOT / "statemachine/setup.asl.json").read_text()
        for variable, logical in SUBSTITUTIONS.items():
            definition = definition.replace("${" + variable + "}", arns[logical])
        doc = json.loads(definition)
        for state in doc["States"].values():
            if state["Type"] == "Wait":
                state["Seconds"] = 0  # the same graph, without waiting
        sfn = boto3.client("stepfunctions")
        machine = sfn.create_state_machine(name="setup", definition=json.dumps(doc), roleArn=role)[
            "stateMachineArn"
        ]
        monkeypatch.setenv("SETUP_STATE_MACHINE_ARN", machine)
        template = yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)
        ssm = boto3.client("ssm")
        ssm.create_document(
            Name="regvault-launch",
            DocumentType="Command",
            DocumentFormat="YAML",
            Content=yaml.safe_dump(template["Resources"]["LaunchDocument"]["Properties"]["Content"]),
        )
        ec2 = boto3.client("ec2")
        image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        yield {
            "module": module,
            "sfn": sfn,
            "instance": instance,
            "url": cfn_response_url,
            "machine": machine,
            "calls": calls,
        }


def create_event(world, **overrides):
    props = {
        "Name": "regvault",
        "Region": "us-east-1",
        "InstanceId": world["instance"],
        "BucketName": "reg-bucket",
        "RootDirectory": "",
        "RecoveryWindowDays": "90",
        "RegistryImage": "registry:2",
        "RegistryPort": "443",
        "TlsSecretArn": "",
        "RegistryUsers": "alice,ci",
        "NotificationsUrl": "",
        "EnableUi": "false",
        "ReplaceExistingProfile": "false",
        "LaunchDocument": "regvault-launch",
        "ManagedTimeoutSeconds": "30",
    }
    props.update(overrides)
    return {
        "RequestType": "Create",
        "ResponseURL": world["url"],
        "StackId": "arn:aws:cloudformation:stack/regvault",
        "RequestId": "req-1",
        "LogicalResourceId": "Setup",
        "ResourceType": "Custom::RegvaultSetup",
        "ResourceProperties": props,
    }


def run(world, event):
    started = world["module"].trigger(event, LambdaContext("SetupTriggerFunction"))
    sfn = world["sfn"]
    for _ in range(300):
        status = sfn.describe_execution(executionArn=started["execution"])
        if status["status"] != "RUNNING":
            break
        time.sleep(0.05)
    history = sfn.get_execution_history(executionArn=started["execution"])["events"]
    return status, json.dumps(history, default=str)


def test_setup_succeeds_end_to_end_and_no_secret_leaks(world, monkeypatch, capsys, caplog):
    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: True)
    status, history = run(world, create_event(world))
    assert status["status"] == "SUCCEEDED", history[-3000:]
    [response] = ResponseCatcher.received
    assert response["Status"] == "SUCCESS" and response["RequestId"] == "req-1"
    assert response["Data"]["Bucket"] == "reg-bucket" and response["Data"]["RecoveryWindowDays"] == 90
    # what each step did, in AWS
    s3, iam, ec2, ssm = (boto3.client(n) for n in ("s3", "iam", "ec2", "ssm"))
    assert s3.get_bucket_versioning(Bucket="reg-bucket")["Status"] == "Enabled"
    profile = iam.get_instance_profile(InstanceProfileName="regvault-registry")["InstanceProfile"]
    assoc = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"] for a in assoc] == [profile["Arn"]]
    [command] = ssm.list_commands()["Commands"]
    assert command["DocumentName"] == "regvault-launch" and command["InstanceIds"] == [world["instance"]]
    # no secret value anywhere: parameters, execution history, logs
    secret = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId="regvault/registry-users")["SecretString"]
    )
    tls = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId="regvault/registry-tls")["SecretString"]
    )
    captured = capsys.readouterr().out + capsys.readouterr().err + caplog.text
    values = [
        *secret["passwords"].values(),
        secret["htpasswd"].splitlines()[0].split(":", 1)[1],
        tls["key"].splitlines()[1],
    ]
    for value in values:
        assert value not in json.dumps(command["Parameters"])
        assert value not in history
        assert value not in captured
    assert "regvault/registry-users" in json.dumps(command["Parameters"])
    # a second run (a stack update) converges and succeeds again without new secrets
    ResponseCatcher.received = []
    status, _ = run(world, dict(create_event(world), RequestType="Update", RequestId="req-2"))
    assert status["status"] == "SUCCEEDED" and ResponseCatcher.received[0]["Status"] == "SUCCESS"
    again = json.loads(
        boto3.client("secretsmanager").get_secret_value(SecretId="regvault/registry-users")["SecretString"]
    )
    assert again["passwords"] == secret["passwords"]


def test_instance_never_managed_fails_the_deploy_with_a_clear_reason(world, monkeypatch):
    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: False)
    status, _ = run(world, create_event(world))
    assert status["status"] == "FAILED"
    [response] = ResponseCatcher.received
    assert response["Status"] == "FAILED"
    assert (
        "InstanceNotManaged" in response["Reason"]
        and "is not managed by SSM after 30 s" in response["Reason"]
    )
    assert boto3.client("ssm").list_commands()["Commands"] == []  # nothing was sent


def test_failing_launch_command_fails_the_deploy_with_its_output(world, monkeypatch):
    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: True)
    monkeypatch.setattr(
        setup_steps,
        "command_status",
        lambda ssm, cid, iid: ("Failed", "regvault: unhealthy: /v2/ answered 502"),
    )
    status, _ = run(world, create_event(world))
    assert status["status"] == "FAILED"
    [response] = ResponseCatcher.received
    assert response["Status"] == "FAILED" and "LaunchFailed" in response["Reason"]
    assert "unhealthy: /v2/ answered 502" in response["Reason"]


def test_existing_profile_fails_unless_replacement_is_allowed(world, monkeypatch):
    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: True)
    iam, ec2 = boto3.client("iam"), boto3.client("ec2")
    theirs = iam.create_instance_profile(InstanceProfileName="theirs")["InstanceProfile"]["Arn"]
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": theirs}, InstanceId=world["instance"])
    status, _ = run(world, create_event(world))
    assert status["status"] == "FAILED"
    assert "set ReplaceExistingProfile=true" in ResponseCatcher.received[0]["Reason"]
    ResponseCatcher.received = []
    status, _ = run(world, dict(create_event(world, ReplaceExistingProfile="true"), RequestId="req-3"))
    assert status["status"] == "SUCCEEDED" and ResponseCatcher.received[0]["Status"] == "SUCCESS"


def test_delete_answers_at_once_and_deletes_nothing(world):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="reg-bucket")
    event = dict(create_event(world), RequestType="Delete")
    assert world["module"].trigger(event, LambdaContext("SetupTriggerFunction")) == {"started": False}
    assert ResponseCatcher.received[0]["Status"] == "SUCCESS"
    assert "reg-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_regvault_setup_reruns_the_last_input_without_answering_cloudformation(world, monkeypatch, capsys):
    from regvault.cli import main

    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: True)
    status, _ = run(world, create_event(world))
    assert status["status"] == "SUCCEEDED" and len(ResponseCatcher.received) == 1
    code = main(["setup", "--state-machine-arn", world["machine"], "--poll", "0.05", "--format", "json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["status"] == "SUCCEEDED" and "cli-" in result["execution"]
    assert len(ResponseCatcher.received) == 1  # no custom resource to answer this time
    assert len(boto3.client("ssm").list_commands()["Commands"]) == 2  # the registry was relaunched
    assert main(["setup", "--state-machine-arn", "not-an-arn"]) == 2
    assert "not a state machine ARN" in capsys.readouterr().err


# S3 API operations whose IAM action has another name
S3_ACTIONS = {
    "HeadBucket": "s3:ListBucket",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
}
# granted for paths a first deploy does not take: re-deploys, drift, replacement, a user's TLS secret
CONDITIONAL = {
    "SetupIdentityFunction": {
        "iam:GetPolicy",
        "iam:GetPolicyVersion",
        "iam:CreatePolicyVersion",
        "iam:DeletePolicyVersion",
        "iam:ListPolicyVersions",
    },
    "SetupAssociationFunction": {"ec2:ReplaceIamInstanceProfileAssociation", "iam:PassRole"},
    "SetupSecretsFunction": {"secretsmanager:PutSecretValue"},
}


def test_each_setup_role_grants_what_its_handler_calls(world, monkeypatch, translated):
    from .test_translated_template import actions

    def managed(ssm, instance):  # moto lacks the call: record it as the real one would be made
        world["calls"].setdefault("SetupLaunchFunction", set()).add("ssm:DescribeInstanceInformation")
        return True

    monkeypatch.setattr(setup_steps, "is_managed", managed)
    status, _ = run(world, create_event(world))
    assert status["status"] == "SUCCEEDED"
    for function, operations in world["calls"].items():
        needed = {S3_ACTIONS.get(op.split(":")[1], op) if op.startswith("s3:") else op for op in operations}
        granted = actions(translated[f"{function}Role"])
        assert needed <= granted, (function, needed - granted)
        assert granted - needed <= CONDITIONAL.get(function, set()), (function, granted - needed)
    assert set(world["calls"]) >= {
        "SetupStorageFunction",
        "SetupSecretsFunction",
        "SetupIdentityFunction",
        "SetupAssociationFunction",
        "SetupLaunchFunction",
        "SetupTriggerFunction",
    }
