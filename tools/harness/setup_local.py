"""Run the template's Setup state machine inside the emulator (make demo): the same ASL, the same
Lambda handlers, against an emulated EC2 instance. Only the registry itself then runs locally."""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import yaml

from harness import ROOT
from harness.processes import HarnessError

HANDLERS = ROOT / "functions" / "setup" / "app.py"


class _CfnLoader(yaml.SafeLoader):
    pass


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_CfnLoader.add_multi_constructor("!", _tag)


def load_template() -> dict[str, Any]:
    return dict(yaml.load((ROOT / "template.yaml").read_text(), Loader=_CfnLoader))  # noqa: S506 - SafeLoader


class LocalSetup:
    """Deploys the Setup state machine's pieces into the emulator and runs it."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.template = load_template()
        self.clients = {
            name: emulator.client(name) for name in ("lambda", "iam", "stepfunctions", "ssm", "ec2")
        }

    def deploy(self) -> str:
        iam, lam = self.clients["iam"], self.clients["lambda"]
        role = iam.create_role(RoleName="regvault-setup-tasks", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr("app.py", HANDLERS.read_text())
        resources = self.template["Resources"]
        arns = {}
        for logical, resource in resources.items():
            if resource["Type"] == "AWS::Serverless::Function" and logical.startswith("Setup"):
                arns[logical] = lam.create_function(
                    FunctionName=logical,
                    Runtime="python3.13",
                    Role=role,
                    Code={"ZipFile": code.getvalue()},
                    Handler=resource["Properties"]["Handler"],
                )["FunctionArn"]
        machine = resources["SetupStateMachine"]["Properties"]
        definition = (ROOT / machine["DefinitionUri"]).read_text()
        for variable, value in machine["DefinitionSubstitutions"].items():
            resolved = "aws" if value == {"Ref": "AWS::Partition"} else arns[value["GetAtt"].split(".")[0]]
            definition = definition.replace("${" + variable + "}", resolved)
        doc = json.loads(definition)
        for state in doc["States"].values():
            if state["Type"] == "Wait":
                state["Seconds"] = 1  # the emulated agent and command answer at once
        self.clients["ssm"].create_document(
            Name="regvault-launch",
            DocumentType="Command",
            DocumentFormat="YAML",
            Content=yaml.safe_dump(resources["LaunchDocument"]["Properties"]["Content"]),
        )
        arn = self.clients["stepfunctions"].create_state_machine(
            name="regvault-setup", definition=json.dumps(doc), roleArn=role
        )["stateMachineArn"]
        return str(arn)

    def instance(self) -> str:
        ec2 = self.clients["ec2"]
        image = next(
            i["ImageId"]
            for i in ec2.describe_images(Owners=["amazon"])["Images"]
            if i.get("Platform") != "windows"
        )
        return str(ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"])

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
