"""Deploy the template's AuditStateMachine into the emulator: the ASL with the template's substitutions
and its two Lambda functions (the real handlers of functions/audit_map/app.py). moto's Step Functions
interpreter runs the Distributed Map (its child executions in threads); a test dispatches the Lambda
invocations to the handlers, as ``setup_local`` does for the Setup state machine."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness import ROOT
from harness.setup_local import load_template

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
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", HANDLERS.read_text())
    arns, handlers = {}, {}
    for logical in FUNCTIONS:
        handler = resources[logical]["Properties"]["Handler"]
        handlers[logical] = handler.split(".", 1)[1]
        arns[logical] = client("lambda").create_function(
            FunctionName=logical,
            Runtime="python3.13",
            Role=role,
            Code={"ZipFile": code.getvalue()},
            Handler=handler,
        )["FunctionArn"]
    machine = resources["AuditStateMachine"]["Properties"]
    definition = (ROOT / machine["DefinitionUri"]).read_text()
    for variable, value in machine["DefinitionSubstitutions"].items():
        if value == {"Ref": "AWS::Partition"}:
            resolved = "aws"
        elif value == {"Ref": "AlertsTopic"}:
            resolved = alert_topic
        else:
            resolved = arns[value["GetAtt"].split(".")[0]]
        definition = definition.replace("${" + variable + "}", resolved)
    doc = json.loads(definition)
    arn = client("stepfunctions").create_state_machine(name=name, definition=json.dumps(doc), roleArn=role)[
        "stateMachineArn"
    ]
    return AuditDeployment(str(arn), handlers, doc)
