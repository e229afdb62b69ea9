"""The Setup state machine, run by moto's ASL interpreter, with each Lambda task dispatched to the real
handler (functions/setup/app.py). Faked only what moto lacks: SSM's describe_instance_information, and a
launch command that fails on the instance."""

import http.server
import json
import threading
import time

import boto3
import pytest
from moto import mock_aws

from harness import ssm_agent
from harness.setup_local import deploy_setup, launch_instance
from regvault.setup import custom_resource
from regvault.setup import steps as setup_steps

from .builders import LambdaContext, dispatch_lambda, load_handler


class ResponseCatcher(http.server.BaseHTTPRequestHandler):
    received: list = []
    failing = False  # CloudFormation's endpoint refusing every answer

    def do_PUT(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if ResponseCatcher.failing:
            self.send_response(500)
            self.end_headers()
            return
        ResponseCatcher.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def cfn_response_url():
    ResponseCatcher.received = []
    ResponseCatcher.failing = False
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
        ssm_agent.model_ssm_agent()  # the SSM agent as AWS documents it: no registration without a reboot
        boto3.client("s3").create_bucket(Bucket="reports")
        module = load_handler("setup", monkeypatch, {"SETUP_RESPONSES_BUCKET": "reports"})
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

        class Recording(list):  # the invoked function is the one whose AWS calls are recorded
            def append(self, name):
                current["name"] = name
                super().append(name)

        dispatch_lambda(monkeypatch, module, functions, Recording())
        # the same deployment as make demo's (the template's functions, substitutions and launch
        # document), without waiting
        deployment = deploy_setup(boto3.client, wait_seconds=0, retry_interval=1, name="setup")
        functions.update(deployment.handlers)
        machine = deployment.machine
        sfn = boto3.client("stepfunctions")
        monkeypatch.setenv("SETUP_STATE_MACHINE_ARN", machine)
        instance = launch_instance(boto3.client("ec2"))
        stack_id = boto3.client("cloudformation").create_stack(
            StackName="regvault",
            TemplateBody=json.dumps(
                {"Resources": {"H": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}
            ),
        )["StackId"]
        yield {
            "stack_id": stack_id,
            "module": module,
            "sfn": sfn,
            "instance": instance,
            "url": cfn_response_url,
            "machine": machine,
            "calls": calls,
            "current": current,
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
        "StackId": world["stack_id"],
        "RequestId": "req-1",
        "LogicalResourceId": "Setup",
        "ResourceType": "Custom::RegvaultSetup",
        "ResourceProperties": props,
    }


def trigger(world, event):
    world["current"]["name"] = "SetupTriggerFunction"  # whose AWS calls these are
    return world["module"].trigger(event, LambdaContext("SetupTriggerFunction"))


def finished(world, execution):
    """The execution once it is no longer RUNNING (30 s at most)."""
    for _ in range(600):
        status = world["sfn"].describe_execution(executionArn=execution)
        if status["status"] != "RUNNING":
            break
        time.sleep(0.05)
    return status


def run(world, event):
    started = trigger(world, event)
    status = finished(world, started["execution"])
    history = world["sfn"].get_execution_history(executionArn=started["execution"])["events"]
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
    names = setup_steps.IamNames.of("regvault", "us-east-1")
    profile = iam.get_instance_profile(InstanceProfileName=names.profile)["InstanceProfile"]
    assoc = ec2.describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"] for a in assoc] == [profile["Arn"]]
    [command] = ssm.list_commands()["Commands"]
    assert command["DocumentName"] == "regvault-launch" and command["InstanceIds"] == [world["instance"]]
    # no secret value anywhere: parameters, execution history, logs; nor the pre-signed ResponseURL
    sm = boto3.client("secretsmanager")
    secret = json.loads(sm.get_secret_value(SecretId="regvault/registry-users")["SecretString"])
    instance_secret = json.loads(sm.get_secret_value(SecretId="regvault/registry-htpasswd")["SecretString"])
    tls = json.loads(sm.get_secret_value(SecretId="regvault/registry-tls")["SecretString"])
    captured = capsys.readouterr().out + capsys.readouterr().err + caplog.text
    values = [
        *secret["passwords"].values(),
        instance_secret["healthcheck_password"],
        instance_secret["htpasswd"].splitlines()[0].split(":", 1)[1],
        tls["key"].splitlines()[1],
    ]
    for value in values:
        assert value not in json.dumps(command["Parameters"])
        assert value not in history
        assert value not in captured
    assert world["url"] not in history
    # the instance is told the htpasswd secret's name, and may read that one and the TLS secret only
    assert "regvault/registry-htpasswd" in json.dumps(command["Parameters"])
    assert "regvault/registry-users" not in json.dumps(command["Parameters"])
    [policy] = iam.list_policies(Scope="Local", PathPrefix=names.path)["Policies"]
    document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
    readable = next(
        st["Resource"]
        for st in document["PolicyVersion"]["Document"]["Statement"]
        if st["Action"] == ["secretsmanager:GetSecretValue"]
    )
    assert sorted(r.split(":secret:")[1].rsplit("-", 1)[0] for r in readable) == [
        "regvault/registry-htpasswd",
        "regvault/registry-tls",
    ]
    assert response["Data"]["Endpoint"].endswith(".amazonaws.com:443")
    # a second run (a stack update) converges and succeeds again without new secrets
    ResponseCatcher.received = []
    status, _ = run(world, dict(create_event(world), RequestType="Update", RequestId="req-2"))
    assert status["status"] == "SUCCEEDED" and ResponseCatcher.received[0]["Status"] == "SUCCESS"
    again = json.loads(sm.get_secret_value(SecretId="regvault/registry-users")["SecretString"])
    assert again["passwords"] == secret["passwords"]


def test_instance_never_managed_fails_the_deploy_with_a_clear_reason(world, monkeypatch):
    # even after the reboot it was allowed
    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: False)
    status, _ = run(world, create_event(world, AllowReboot="true", AgentGraceSeconds="15"))
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
    # the preflight names it before anything is written
    reason = ResponseCatcher.received[0]["Reason"]
    assert reason.startswith("PreflightFailed") and "redeploy with ReplaceExistingProfile=true" in reason
    assert "reg-bucket" not in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    ResponseCatcher.received = []
    status, _ = run(world, dict(create_event(world, ReplaceExistingProfile="true"), RequestId="req-3"))
    assert status["status"] == "SUCCEEDED" and ResponseCatcher.received[0]["Status"] == "SUCCESS"


def test_delete_answers_at_once_stops_a_running_setup_and_deletes_nothing(world, monkeypatch):
    # Given a setup still waiting for the SSM agent (a create that timed out, then a rollback's Delete)
    s3, ssm = boto3.client("s3"), boto3.client("ssm")  # made before a second thread runs tasks
    s3.create_bucket(Bucket="reg-bucket")
    started = trigger(world, create_event(world, ManagedTimeoutSeconds="100000", AgentGraceSeconds="100000"))
    sfn = world["sfn"]
    deadline = time.monotonic() + 60  # until it is really under way, waiting for the agent
    while time.monotonic() < deadline:
        history = json.dumps(
            sfn.get_execution_history(executionArn=started["execution"])["events"], default=str
        )
        if "CheckManaged" in history:
            break
        time.sleep(0.05)
    assert "CheckManaged" in history, "the setup never reached the agent check"
    assert sfn.describe_execution(executionArn=started["execution"])["status"] == "RUNNING"
    command = ssm.send_command(InstanceIds=[world["instance"]], DocumentName="regvault-launch")["Command"]
    monkeypatch.setattr(
        custom_resource.Trigger,
        "__init__",
        wrap_ssm_listing(custom_resource.Trigger.__init__, command["CommandId"], cancels := []),
    )
    ResponseCatcher.received = []
    # When CloudFormation deletes the custom resource
    result = trigger(world, dict(create_event(world), RequestType="Delete", RequestId="req-9"))
    # Then it answers at once, the execution is stopped, its launch command cancelled, nothing deleted
    assert ResponseCatcher.received[0]["Status"] == "SUCCESS" and result["errors"] == []
    assert result["stopped"] == [started["execution"]]
    assert result["cancelled"] == [command["CommandId"]]
    assert cancels == [{"CommandId": command["CommandId"], "InstanceIds": [world["instance"]]}]
    # The stop took: without it the execution would wait for the agent for 100,000 s. moto ends it at
    # its interpreter's next step, ABORTED, or FAILED when that step was the agent check it was inside
    # (the check then fails on the stopped execution): an emulator artefact; AWS shows ABORTED at once.
    assert finished(world, started["execution"])["status"] in ("ABORTED", "FAILED")
    assert "reg-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def wrap_ssm_listing(init, command_id, cancelled):
    """What moto lacks: a just-sent command stays InProgress (moto lists it as Success at once; the
    real one runs for minutes), and CancelCommand (recorded here)."""

    def patched(self, *args, **kwargs):
        init(self, *args, **kwargs)
        if self.ssm is None:
            return
        real = self.ssm

        class Ssm:
            @staticmethod
            def list_commands(**params):
                out = real.list_commands(**params)
                for item in out["Commands"]:
                    if item["CommandId"] == command_id:
                        item["Status"] = "InProgress"
                return out

            @staticmethod
            def cancel_command(**params):
                cancelled.append(params)

        object.__setattr__(self, "ssm", Ssm())

    return patched


def test_a_failing_start_answers_cloudformation_at_once(world, monkeypatch):
    # Given StartExecution refused (the state machine is gone, a throttle, a missing permission)
    monkeypatch.setenv("SETUP_STATE_MACHINE_ARN", world["machine"] + "-gone")
    result = trigger(world, create_event(world))
    # Then CloudFormation hears FAILED with the reason now, not after the hour of ServiceTimeout
    assert result["started"] is False
    [response] = ResponseCatcher.received
    assert response["Status"] == "FAILED" and "could not start" in response["Reason"]
    # bad properties too
    ResponseCatcher.received = []
    trigger(world, create_event(world, RegistryPort="https"))
    assert (
        ResponseCatcher.received[0]["Status"] == "FAILED"
        and "bad value" in ResponseCatcher.received[0]["Reason"]
    )


def test_a_response_cloudformation_refuses_ends_the_execution_visibly(world, monkeypatch):
    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: True)
    ResponseCatcher.failing = True
    status, history = run(world, create_event(world))
    # Healthy's PUT failed (retried), then Failed's PUT failed too: the execution says so
    assert status["status"] == "FAILED" and status["error"] == "CustomResourceNotAnswered"
    assert history.count('"name": "Healthy"') >= 1 and history.count('"name": "Failed"') >= 1


def test_a_rollback_is_answered_at_once_and_reapplies_in_the_background(world, monkeypatch):
    from moto.cloudformation.models import cloudformation_backends

    monkeypatch.setattr(setup_steps, "is_managed", lambda ssm, instance: True)
    stack = cloudformation_backends["123456789012"]["us-east-1"].stacks[world["stack_id"]]
    monkeypatch.setattr(stack, "status", "UPDATE_ROLLBACK_IN_PROGRESS")
    result = trigger(world, dict(create_event(world), RequestType="Update", RequestId="req-r"))
    # answered SUCCESS before any setup step ran
    [response] = ResponseCatcher.received
    assert response["Status"] == "SUCCESS" and "rollback answered at once" in response["Reason"]
    assert result["rollback"] is True
    done = finished(world, result["execution"])
    # the background run converged and, having no request, answered nobody a second time
    assert done["status"] == "SUCCEEDED" and len(ResponseCatcher.received) == 1


def test_agent_that_ran_without_a_profile_is_rebooted_when_allowed(world):
    # The emulator's agent model: after the association, no registration until a reboot
    status, _ = run(world, create_event(world, AllowReboot="true", AgentGraceSeconds="30"))
    assert status["status"] == "SUCCEEDED"
    assert ssm_agent.AGENT.reboots.get(world["instance"]) == 1
    assert ResponseCatcher.received[0]["Status"] == "SUCCESS"
    assert len(boto3.client("ssm").list_commands()["Commands"]) == 1


def test_agent_that_ran_without_a_profile_fails_at_once_with_the_remedy_when_reboot_not_allowed(world):
    status, _ = run(world, create_event(world, AgentGraceSeconds="30"))
    assert status["status"] == "FAILED"
    reason = ResponseCatcher.received[0]["Reason"]
    assert reason.startswith("InstanceNotManaged") and "is not managed by SSM 30 s after" in reason
    for remedy in ("restart the agent", "reboot the instance", "AllowReboot=true", "Default Host Management"):
        assert remedy in reason
    assert ssm_agent.AGENT.reboots.get(world["instance"]) is None  # never rebooted
    assert boto3.client("ssm").list_commands()["Commands"] == []  # nothing was sent


def test_agent_back_off_that_runs_out_needs_no_reboot(world, monkeypatch):
    monkeypatch.setattr(ssm_agent.AGENT, "backoff_s", 0.0)
    status, _ = run(world, create_event(world, AgentGraceSeconds="30"))
    assert status["status"] == "SUCCEEDED" and ssm_agent.AGENT.reboots.get(world["instance"]) is None


def test_regvault_setup_reruns_the_last_input_without_answering_cloudformation(world, monkeypatch, capsys):
    from regvault.cli.main import main

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
# granted for paths a first deploy does not take: re-deploys, drift, replacement, a user's TLS secret,
# a Delete while a setup still runs
CONDITIONAL = {
    "SetupIdentityFunction": {
        "iam:GetPolicy",
        "iam:GetPolicyVersion",
        "iam:CreatePolicyVersion",
        "iam:DeletePolicyVersion",
        "iam:ListPolicyVersions",
    },
    "SetupAssociationFunction": {"ec2:ReplaceIamInstanceProfileAssociation"},
    "SetupSecretsFunction": {"secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret", "kms:Decrypt"},
    "SetupPreflightFunction": {"secretsmanager:DescribeSecret"},
    "SetupLaunchFunction": {"ec2:RebootInstances"},
    # only with ProtectedTags (a conditional statement); test_guard_function covers the calls themselves
    "SetupStorageFunction": {"s3:GetBucketNotification", "s3:PutBucketNotification"},
    "SetupTriggerFunction": {"states:StopExecution", "ssm:CancelCommand"},
}


def dependent_actions(action: str) -> set[str]:
    """What AWS checks besides the action itself (the Service Authorization Reference's "dependent
    actions", read offline from policy_sentry's database): AddRoleToInstanceProfile and
    AssociateIamInstanceProfile need iam:PassRole on the role, which moto never checks."""
    from policy_sentry.querying.actions import get_action_data

    service, name = action.split(":", 1)
    rows = (get_action_data(service, name) or {}).get(service, [])
    return {d for row in rows for d in row.get("dependent_actions") or [] if d.split(":")[0] != "s3"}


def needed_actions(operations: set[str]) -> set[str]:
    own = {S3_ACTIONS.get(op.split(":")[1], op) if op.startswith("s3:") else op for op in operations}
    return own | {d for action in own for d in dependent_actions(action)}


def test_dependent_actions_are_known_for_the_calls_that_pass_a_role():
    # the check below is only as good as this lookup: it must name PassRole where AWS requires it
    assert needed_actions({"iam:AddRoleToInstanceProfile"}) == {
        "iam:AddRoleToInstanceProfile",
        "iam:PassRole",
    }
    assert "iam:PassRole" in needed_actions({"ec2:AssociateIamInstanceProfile"})
    assert "iam:PassRole" in needed_actions({"ec2:ReplaceIamInstanceProfileAssociation"})


def test_each_setup_role_grants_what_its_handler_calls(world, monkeypatch, translated):
    from .test_translated_template import actions

    def managed(ssm, instance):  # the agent model answers offline; record the call as AWS sees it
        world["calls"].setdefault("SetupLaunchFunction", set()).add("ssm:DescribeInstanceInformation")
        return True

    monkeypatch.setattr(setup_steps, "is_managed", managed)
    status, _ = run(world, create_event(world))
    assert status["status"] == "SUCCEEDED"
    # an update and a delete take the trigger's other paths
    status, _ = run(world, dict(create_event(world), RequestType="Update", RequestId="req-2"))
    assert status["status"] == "SUCCEEDED"
    trigger(world, dict(create_event(world), RequestType="Delete", RequestId="req-3"))
    preflight = world["calls"].setdefault("SetupPreflightFunction", set())
    preflight.add("ssm:DescribeInstanceInformation")  # moto lacks it: the agent model answered
    for function, operations in world["calls"].items():
        needed = needed_actions(operations)
        granted = actions(translated[f"{function}Role"])
        assert needed <= granted, (function, needed - granted)
        assert granted - needed <= CONDITIONAL.get(function, set()), (function, granted - needed, operations)
    assert set(world["calls"]) >= {
        "SetupPreflightFunction",
        "SetupStorageFunction",
        "SetupSecretsFunction",
        "SetupIdentityFunction",
        "SetupAssociationFunction",
        "SetupLaunchFunction",
        "SetupRespondFunction",
        "SetupTriggerFunction",
    }
