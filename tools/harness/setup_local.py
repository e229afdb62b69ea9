"""Run the template's Setup state machine inside the emulator (make demo): the same ASL, the same
Lambda handlers, against an emulated EC2 instance. Only the registry itself then runs locally."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness import ROOT
from harness.processes import HarnessError

HANDLERS = ROOT / "functions" / "setup" / "app.py"


class CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation tags (!Ref, !Sub, !GetAtt …) as {"Ref": …} mappings."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


CfnLoader.add_multi_constructor("!", _tag)


def load_template() -> dict[str, Any]:
    """template.yaml as a dict, CloudFormation tags kept as mappings (the one loader of the repository)."""
    return dict(yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader))  # noqa: S506 - SafeLoader


@dataclass
class SetupDeployment:
    machine: str  # the state machine's ARN
    role: str
    handlers: dict[str, str]  # Lambda function (logical id) -> handler attribute of app.py


def deploy_functions(
    client: Callable[[str], Any], resources: dict[str, Any], names: list[str], handlers_file: Path, role: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Create the template's Lambda functions ``names`` with the real handlers' code: (ARNs, handler
    attribute of app.py) by logical id."""
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("app.py", handlers_file.read_text())
    arns, handlers = {}, {}
    for logical in names:
        handler = resources[logical]["Properties"]["Handler"]
        handlers[logical] = handler.split(".", 1)[1]
        arns[logical] = client("lambda").create_function(
            FunctionName=logical,
            Runtime="python3.13",
            Role=role,
            Code={"ZipFile": code.getvalue()},
            Handler=handler,
        )["FunctionArn"]
    return arns, handlers


def substituted(
    machine: dict[str, Any], arns: dict[str, str], refs: dict[str, str] | None = None
) -> dict[str, Any]:
    """A state machine's ASL with its DefinitionSubstitutions filled in: the partition, function ARNs
    (``!GetAtt X.Arn``) and ``refs`` for other ``!Ref`` values."""
    definition = (ROOT / machine["DefinitionUri"]).read_text()
    for variable, value in machine["DefinitionSubstitutions"].items():
        if value == {"Ref": "AWS::Partition"}:
            resolved = "aws"
        elif "Ref" in value:
            resolved = (refs or {})[value["Ref"]]
        else:
            resolved = arns[value["GetAtt"].split(".")[0]]
        definition = definition.replace("${" + variable + "}", resolved)
    return dict(json.loads(definition))


def deploy_setup(
    client: Callable[[str], Any],
    template: dict[str, Any] | None = None,
    wait_seconds: int = 1,
    retry_interval: int | None = None,
    name: str = "regvault-setup",
) -> SetupDeployment:
    """Deploy the template's Setup state machine with ``client(service)``'s clients: its Lambda
    functions (the real handlers' code), the ASL with the template's DefinitionSubstitutions, and the
    launch document. Wait states last ``wait_seconds`` (the emulated agent and command answer at once)
    and Retry intervals ``retry_interval`` when given."""
    template = template if template is not None else load_template()
    role = client("iam").create_role(RoleName="regvault-setup-tasks", AssumeRolePolicyDocument="{}")["Role"][
        "Arn"
    ]
    resources = template["Resources"]
    names = [
        k for k, r in resources.items() if r["Type"] == "AWS::Serverless::Function" and k.startswith("Setup")
    ]
    arns, handlers = deploy_functions(client, resources, names, HANDLERS, role)
    doc = substituted(resources["SetupStateMachine"]["Properties"], arns)
    for state in doc["States"].values():
        if state["Type"] == "Wait":
            state["Seconds"] = wait_seconds
        for retry in state.get("Retry", []) if retry_interval is not None else []:
            retry["IntervalSeconds"] = retry_interval
    create_launch_document(client("ssm"), template)
    arn = client("stepfunctions").create_state_machine(name=name, definition=json.dumps(doc), roleArn=role)[
        "stateMachineArn"
    ]
    return SetupDeployment(str(arn), role, handlers)


LAUNCH_DOCUMENT = "regvault-launch"


def create_launch_document(ssm: Any, template: dict[str, Any] | None = None) -> str:
    """The template's launch document, as SSM keeps it, under ``LAUNCH_DOCUMENT``."""
    content = (template or load_template())["Resources"]["LaunchDocument"]["Properties"]["Content"]
    ssm.create_document(
        Name=LAUNCH_DOCUMENT, DocumentType="Command", DocumentFormat="YAML", Content=yaml.safe_dump(content)
    )
    return LAUNCH_DOCUMENT


def launch_instance(ec2: Any, profile: str | None = None) -> str:
    """An emulated Linux EC2 instance for the setup to adopt (no profile unless ``profile``)."""
    image = next(
        i["ImageId"]
        for i in ec2.describe_images(Owners=["amazon"])["Images"]
        if i.get("Platform") != "windows"
    )
    extra = {"IamInstanceProfile": {"Name": profile}} if profile else {}
    return str(
        ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, **extra)["Instances"][0]["InstanceId"]
    )


class LocalSetup:
    """Deploys the Setup state machine's pieces into the emulator and runs it."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.template = load_template()
        self.clients = {
            name: emulator.client(name) for name in ("lambda", "iam", "stepfunctions", "ssm", "ec2")
        }

    def deploy(self) -> str:
        return deploy_setup(self.clients.__getitem__, self.template).machine

    def instance(self) -> str:
        return launch_instance(self.clients["ec2"])

    def run(self, machine: str, properties: dict[str, str], timeout: float = 120) -> dict[str, Any]:
        sfn = self.clients["stepfunctions"]
        execution = sfn.start_execution(
            stateMachineArn=machine,
            name=f"demo-{int(time.time())}",
            input=json.dumps({"request": {}, "config": properties}),
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while True:
            status = sfn.describe_execution(executionArn=execution)
            if status["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise HarnessError(f"the setup state machine is still running after {timeout} s")
            time.sleep(0.2)
        if status["status"] != "SUCCEEDED":
            history = sfn.get_execution_history(executionArn=execution)["events"]
            raise HarnessError(f"setup {status['status']}: {json.dumps(history[:8], default=str)[-2500:]}")
        return dict(json.loads(status["output"]))
