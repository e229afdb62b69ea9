"""The CloudFormation custom resource around the Setup state machine: the trigger that starts it (or
answers at once: Delete, rollbacks, anything that fails to start), and the answer the state machine's
last task sends. Every path answers, so a stack never waits out the hour of ServiceTimeout."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from typing import Any

from regvault.errors import InvalidInput
from regvault.setup.provision import SetupError
from regvault.setup.steps import SetupConfig

RESPONSE_LIMIT = 4096  # CloudFormation refuses a custom resource response body above 4 KiB


def failure_reason(error: dict[str, Any] | None) -> str:
    """One line from a Step Functions error: the Lambda's errorMessage, or the Cause as given (the
    preflight's every problem included; response_body cuts it to fit CloudFormation's 4 KiB)."""
    if not error:
        return "setup failed"
    cause = str(error.get("Cause", ""))
    try:
        parsed = json.loads(cause)
    except json.JSONDecodeError:
        parsed = None
    message = parsed.get("errorMessage") if isinstance(parsed, dict) else None
    return f"{error.get('Error', 'Error')}: {message or cause or 'no detail'}".replace("\n", " ")[:3000]


def response_body(request: dict[str, Any], status: str, reason: str, data: dict[str, Any] | None) -> bytes:
    """The custom resource's answer, kept under CloudFormation's 4 KiB (the reason is cut first)."""
    if status not in ("SUCCESS", "FAILED"):
        raise SetupError(f"bad custom resource status {status}")
    for limit in (3000, 1500, 500, 100):
        body = json.dumps(
            {
                "Status": status,
                "Reason": reason[:limit],
                "PhysicalResourceId": request.get("PhysicalResourceId")
                or f"regvault-setup-{request.get('LogicalResourceId', 'Setup')}",
                "StackId": request.get("StackId"),
                "RequestId": request.get("RequestId"),
                "LogicalResourceId": request.get("LogicalResourceId"),
                "Data": data or {},
            }
        ).encode()
        if len(body) <= RESPONSE_LIMIT:
            return body
    raise SetupError(f"the custom resource response is {len(body)} bytes, over CloudFormation's 4096")


def respond(
    request: dict[str, Any] | None,
    status: str,
    reason: str,
    data: dict[str, Any] | None = None,
    url: str | None = None,
) -> int:
    """Answer the CloudFormation custom resource (PUT to its pre-signed ResponseURL).

    A run without a custom resource (``regvault setup``) has no request: nothing to answer (0). The
    URL is passed apart from the request: the state machine's input never holds it (see start)."""
    url = url or (request or {}).get("ResponseURL")
    if not request or not url:
        return 0
    body = response_body(request, status, reason, data)
    if not url.startswith(("https://", "http://127.0.0.1")):
        raise SetupError("the custom resource's ResponseURL is missing or not https")
    put = urllib.request.Request(url, data=body, method="PUT", headers={"Content-Type": ""})  # noqa: S310
    with urllib.request.urlopen(put, timeout=30) as response:  # noqa: S310 - CloudFormation's pre-signed URL
        return int(response.status)


def answer(event: dict[str, Any], urls: ResponseUrls | None) -> dict[str, Any]:
    """The respond task: SUCCESS with the stack's outputs, or FAILED with one line saying why."""
    status = str(event["status"])
    reason = "registry launched and healthy" if status == "SUCCESS" else failure_reason(event.get("error"))
    request = dict(event.get("request") or {})
    if request.get("ResponseKey") and urls is None:
        raise SetupError("no bucket to read the custom resource's response URL from (SETUP_RESPONSES_BUCKET)")
    url = urls.get(str(request["ResponseKey"])) if request.get("ResponseKey") and urls else None
    http = respond(request, status, reason, event.get("data"), url)
    return {"status": status, "reason": reason, "response_http": http}


class ResponseUrls:
    """Where the custom resource's pre-signed ResponseURL waits for the respond task.

    The URL lets anyone who holds it answer for the stack, so it stays out of the state machine's input
    (and so of its execution history): the trigger writes it to the reports bucket under
    ``setup/responses/<request id>.json``, the respond task reads it from there."""

    PREFIX = "setup/responses/"

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket

    def put(self, request_id: str, url: str) -> str:
        key = f"{self.PREFIX}{request_id}.json"
        self.s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=json.dumps({"ResponseURL": url}).encode(),
            ContentType="application/json",
        )
        return key

    def get(self, key: str) -> str:
        if not key.startswith(self.PREFIX):
            raise InvalidInput(f"not a response key: {key[:80]!r}")
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return str(json.loads(body)["ResponseURL"])


@dataclass(frozen=True)
class Trigger:
    """The custom resource's AWS side: the state machine, and for Delete and rollbacks the running
    executions and their SSM commands, and the stack's status."""

    sfn: Any
    state_machine_arn: str
    urls: ResponseUrls | None = None
    cfn: Any = None
    ssm: Any = None


def start(event: dict[str, Any], trigger: Trigger) -> dict[str, Any]:
    """The custom resource. Every path answers CloudFormation (or leaves it to the execution it
    started), so a stack never waits out the hour of ServiceTimeout:

    - Create/Update: start the Setup state machine, which answers once the registry is healthy or failed.
    - Update during UPDATE_ROLLBACK_IN_PROGRESS: answer SUCCESS at once (a rollback that ran the whole
      setup again could fail and leave UPDATE_ROLLBACK_FAILED) and re-apply the previous settings in
      the background, without answering.
    - Delete: stop running setup executions, cancel their launch commands, answer at once; nothing
      is deleted (bucket, data, IAM chain and secrets stay).
    - Anything that fails here (bad properties, StartExecution refused): answer FAILED with the reason.
    """
    try:
        return _start(event, trigger)
    except Exception as exc:  # the custom resource must hear back whatever went wrong here
        reason = f"the setup could not start: {type(exc).__name__}: {exc}".replace("\n", " ")
        respond(event, "FAILED", reason)
        return {"started": False, "error": reason}


def _start(event: dict[str, Any], trigger: Trigger) -> dict[str, Any]:
    kind = event["RequestType"]
    props = dict(event.get("ResourceProperties") or {})
    config = SetupConfig.from_properties(props)  # bad properties: FAILED now, not an hour later
    if kind == "Delete":
        stopped = stop_running(trigger, config)
        respond(event, "SUCCESS", "nothing deleted: the registry bucket and its data are kept")
        return {"started": False, **stopped}
    name = f"{kind}-{event['RequestId']}"[:80]
    if kind == "Update" and _rolling_back(trigger, str(event.get("StackId", ""))):
        execution = trigger.sfn.start_execution(
            stateMachineArn=trigger.state_machine_arn,
            name=f"rollback-{event['RequestId']}"[:80],
            input=json.dumps({"request": {}, "config": props}),
        )["executionArn"]
        respond(
            event,
            "SUCCESS",
            "rollback answered at once; the previous settings are re-applied by "
            + execution.rsplit(":", 1)[-1],
        )
        return {"started": True, "rollback": True, "execution": execution}
    request = {
        k: v
        for k, v in event.items()
        if k not in ("ResourceProperties", "OldResourceProperties", "ResponseURL")
    }
    if trigger.urls is None:
        raise SetupError("no bucket for the custom resource's response URL (SETUP_RESPONSES_BUCKET)")
    request["ResponseKey"] = trigger.urls.put(str(event["RequestId"]), str(event["ResponseURL"]))
    execution = trigger.sfn.start_execution(
        stateMachineArn=trigger.state_machine_arn,
        name=name,
        input=json.dumps({"request": request, "config": props}),
    )
    return {"started": True, "execution": execution["executionArn"]}


def _rolling_back(trigger: Trigger, stack_id: str) -> bool:
    if trigger.cfn is None or not stack_id:
        return False
    stacks = trigger.cfn.describe_stacks(StackName=stack_id)["Stacks"]
    return bool(stacks) and str(stacks[0].get("StackStatus")) == "UPDATE_ROLLBACK_IN_PROGRESS"


def stop_running(trigger: Trigger, config: SetupConfig) -> dict[str, Any]:
    """Stop the setup executions still running and cancel their launch commands on the instance.

    Best effort: a Delete must answer SUCCESS even when this fails (the stack would end DELETE_FAILED),
    so each failure is reported in the result and the log, not raised."""
    stopped: list[str] = []
    cancelled: list[str] = []
    errors: list[str] = []
    try:
        running = trigger.sfn.list_executions(
            stateMachineArn=trigger.state_machine_arn, statusFilter="RUNNING"
        )
        for execution in running.get("executions", []):
            try:
                trigger.sfn.stop_execution(
                    executionArn=execution["executionArn"],
                    error="StackDeleted",
                    cause="the stack is being deleted",
                )
                stopped.append(execution["executionArn"])
            except Exception as exc:  # one that ended meanwhile, a throttle: report, go on
                errors.append(f"stop {execution['executionArn']}: {exc}")
        if trigger.ssm is not None and config.launch_document:
            for command in trigger.ssm.list_commands(InstanceId=config.instance_id).get("Commands", []):
                document = str(command.get("DocumentName", ""))
                ours = document == config.launch_document or document.endswith(f"/{config.launch_document}")
                if ours and command.get("Status") in ("Pending", "InProgress"):
                    trigger.ssm.cancel_command(
                        CommandId=command["CommandId"], InstanceIds=[config.instance_id]
                    )
                    cancelled.append(command["CommandId"])
    except Exception as exc:
        errors.append(str(exc))
    return {"stopped": stopped, "cancelled": cancelled, "errors": errors}
