"""Deploy the template's AuditStateMachine into the emulator: the ASL with the template's substitutions
and its two Lambda functions (the real handlers of functions/audit_map/app.py). moto's Step Functions
interpreter runs the Distributed Map (its child executions in threads); a test dispatches the Lambda
invocations to the handlers, as ``setup_local`` does for the Setup state machine."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness import ROOT
from harness.setup_local import deploy_functions, load_template, substituted

HANDLERS = ROOT / "functions" / "audit_map" / "app.py"
FUNCTIONS = ("AuditWorkerFunction", "AuditReduceFunction")


@dataclass
class AuditDeployment:
    machine: str  # the state machine's ARN
    handlers: dict[str, str]  # Lambda function (logical id) -> handler attribute of app.py
    definition: dict[str, Any]  # the ASL as deployed


def deploy_audit(
    client: Callable[[str], Any],
    alert_topic: str,
    template: dict[str, Any] | None = None,
    name: str = "audit",
) -> AuditDeployment:
    template = template if template is not None else load_template()
    resources = template["Resources"]
    role = client("iam").create_role(RoleName=f"regvault-{name}", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    arns, handlers = deploy_functions(client, resources, list(FUNCTIONS), HANDLERS, role)
    doc = substituted(resources["AuditStateMachine"]["Properties"], arns, {"AlertsTopic": alert_topic})
    arn = client("stepfunctions").create_state_machine(name=name, definition=json.dumps(doc), roleArn=role)[
        "stateMachineArn"
    ]
    return AuditDeployment(str(arn), handlers, doc)
