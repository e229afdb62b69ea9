"""Least privilege read from the samtranslator output (what CloudFormation really gets)."""

import json


def statements(role):
    out = []
    for policy in role["Properties"].get("Policies", []):
        if "Fn::If" in policy:  # a conditional policy: check what it grants when on
            policy = policy["Fn::If"][1]
        for st in policy["PolicyDocument"]["Statement"]:
            if isinstance(st, dict) and "Fn::If" in st:
                st = st["Fn::If"][1]
            if isinstance(st, dict) and "Action" in st:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                out.append((set(actions), json.dumps(st.get("Resource"))))
    return out


def actions(role, on=None):
    return {a for acts, res in statements(role) if on is None or on in res for a in acts}


def test_no_role_grants_wildcard_actions(translated):
    for name, resource in translated.items():
        if resource["Type"] == "AWS::IAM::Role":
            for acts, _ in statements(resource):
                assert not any(a == "*" or a.endswith(":*") for a in acts), name


def test_audit_and_catalog_roles_are_read_only_on_the_registry_bucket(translated):
    for role in ("AuditFunctionRole", "CatalogFunctionRole"):
        granted = actions(translated[role], on="BucketName")
        assert granted and all(a.startswith(("s3:Get", "s3:List")) for a in granted), (role, granted)


def test_restore_and_repair_roles_delete_nothing_but_the_lease(translated):
    for role in ("RestoreFunctionRole", "RepairFunctionRole"):
        granted = statements(translated[role])
        assert any("s3:PutObject" in acts for acts, _ in granted)
        deletes = [(acts, res) for acts, res in granted if any("Delete" in a for a in acts)]
        # one statement: the writers' lease (a delete marker releases it), never a version
        assert len(deletes) == 1 and "s3:DeleteObjectVersion" not in deletes[0][0], role
        assert deletes[0][1].count("/regvault/lease.json") == 2, deletes[0][1]


def test_setup_roles_are_scoped(translated):
    storage = translated["SetupStorageFunctionRole"]
    assert all("Delete" not in a for a in actions(storage))
    assert all(
        res == json.dumps({"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"})
        for _, res in statements(storage)
    )
    identity = statements(translated["SetupIdentityFunctionRole"])
    for acts, res in identity:
        assert acts == {"iam:ListPolicies"} or "/regvault/${AWS::Region}/${AWS::StackName}/*" in res
    launch = dict((frozenset(a), r) for a, r in statements(translated["SetupLaunchFunctionRole"]))
    assert "instance/${InstanceId}" in launch[frozenset({"ssm:SendCommand"})]
    machine = actions(translated["SetupStateMachineRole"])
    assert machine == {"lambda:InvokeFunction"}


def test_setup_custom_resource_waits_for_the_state_machine(translated):
    setup = translated["Setup"]
    assert setup["Type"] == "Custom::RegvaultSetup"
    assert setup["Properties"]["ServiceToken"] == {"Fn::GetAtt": ["SetupTriggerFunction", "Arn"]}
    assert setup["Properties"]["ServiceTimeout"] == 3600
    schedule = next(r for r in translated.values() if r["Type"] == "AWS::Scheduler::Schedule")
    assert schedule["Properties"]["ScheduleExpression"] == {"Ref": "AuditSchedule"}


def passrole_statements(role):
    found = []
    for policy in role["Properties"].get("Policies", []):
        policy = policy["Fn::If"][1] if "Fn::If" in policy else policy
        for st in policy["PolicyDocument"]["Statement"]:
            if isinstance(st, dict) and "iam:PassRole" in json.dumps(st.get("Action")):
                found.append(st)
    return found


def test_passrole_is_granted_on_the_registry_role_for_ec2_only(translated):
    # AddRoleToInstanceProfile and AssociateIamInstanceProfile both make IAM check iam:PassRole
    for role in ("SetupIdentityFunctionRole", "SetupAssociationFunctionRole"):
        [statement] = passrole_statements(translated[role])
        assert "role/regvault/${AWS::Region}/${AWS::StackName}/*" in json.dumps(statement["Resource"])
        condition = statement["Condition"]["StringEquals"]["iam:PassedToService"]
        assert condition == {"Fn::Sub": "ec2.${AWS::URLSuffix}"}
    for name, resource in translated.items():
        if resource["Type"] == "AWS::IAM::Role" and name not in (
            "SetupIdentityFunctionRole",
            "SetupAssociationFunctionRole",
        ):
            assert not passrole_statements(resource), name


def test_reboot_is_granted_on_the_registry_instance_only_when_allowed(translated):
    role = translated["SetupLaunchFunctionRole"]
    text = json.dumps(role["Properties"]["Policies"])
    assert "ec2:RebootInstances" in text
    reboot = next(
        st["Fn::If"]
        for p in role["Properties"]["Policies"]
        for st in p["PolicyDocument"]["Statement"]
        if "Fn::If" in st
    )
    assert reboot[0] == "RebootAllowed" and reboot[2] == {"Ref": "AWS::NoValue"}
    assert reboot[1]["Resource"]["Fn::Sub"].endswith(":instance/${InstanceId}")


def references(node):
    """The logical ids a piece of template refers to (Ref, GetAtt, and names inside Sub strings)."""
    import re

    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0] if isinstance(value, list) else value.split(".")[0])
            elif key == "Fn::Sub":
                text = value if isinstance(value, str) else value[0]
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)}
            found |= references(value)
    elif isinstance(node, list):
        for item in node:
            found |= references(item)
    return found


def dependencies(translated, name):
    """Everything CloudFormation must have created before ``name`` (transitively)."""
    seen, todo = set(), [name]
    while todo:
        resource = translated[todo.pop()]
        direct = references(resource.get("Properties", {})) | set(
            [resource["DependsOn"]]
            if isinstance(resource.get("DependsOn"), str)
            else resource.get("DependsOn", [])
        )
        for dep in direct & set(translated) - seen:
            seen.add(dep)
            todo.append(dep)
    return seen


def test_every_function_the_setup_runs_has_its_log_group_before_the_custom_resource(translated):
    before_setup = dependencies(translated, "Setup")
    machine = translated["SetupStateMachine"]["Properties"]
    run_by_setup = {"SetupTriggerFunction"} | {
        value["Fn::GetAtt"][0]
        for value in machine.get("DefinitionSubstitutions", {}).values()
        if isinstance(value, dict) and "Fn::GetAtt" in value
    }
    assert "SetupPreflightFunction" in run_by_setup and len(run_by_setup) == 8
    for function in run_by_setup:
        [group] = [
            name
            for name, r in translated.items()
            if r["Type"] == "AWS::Logs::LogGroup" and function in references(r["Properties"]["LogGroupName"])
        ]
        assert group in before_setup, f"{group} may be created after the custom resource runs {function}"
        assert function in before_setup and f"{function}Role" in before_setup
    # and nothing the custom resource needs comes after it
    assert "Setup" not in before_setup
    assert all("Setup" not in dependencies(translated, name) for name in before_setup)


def test_no_hard_coded_partition_anywhere():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for path in (root / "template.yaml", root / "statemachine" / "setup.asl.json"):
        assert "arn:aws:" not in path.read_text(), path
    for path in (root / "layers" / "regvault" / "regvault").glob("*.py"):
        assert '"arn:aws:' not in path.read_text(), path


def test_a_customer_key_tls_secret_is_readable_by_the_setup_and_the_endpoint_is_a_hostname(translated):
    role = translated["SetupSecretsFunctionRole"]
    decrypt = [
        st["Fn::If"][1]
        for p in role["Properties"]["Policies"]
        for st in p["PolicyDocument"]["Statement"]
        if "Fn::If" in st and st["Fn::If"][1].get("Action") == "kms:Decrypt"
    ]
    assert len(decrypt) == 1 and decrypt[0]["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "secretsmanager.${AWS::Region}.${AWS::URLSuffix}"
    }
    outputs = translated_outputs()
    assert outputs["RegistryEndpoint"]["Value"] == {"GetAtt": "Setup.Endpoint"}


def translated_outputs():
    from harness.setup_local import load_template

    return load_template()["Outputs"]
