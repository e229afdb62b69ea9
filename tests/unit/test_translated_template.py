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


def test_restore_role_has_no_delete_at_all(translated):
    granted = actions(translated["RestoreFunctionRole"])
    assert "s3:PutObject" in granted and not any("Delete" in a for a in granted)


def test_setup_roles_are_scoped(translated):
    storage = translated["SetupStorageFunctionRole"]
    assert all("Delete" not in a for a in actions(storage))
    assert all(
        res == json.dumps({"Fn::Sub": "arn:${AWS::Partition}:s3:::${BucketName}"})
        for _, res in statements(storage)
    )
    identity = statements(translated["SetupIdentityFunctionRole"])
    for acts, res in identity:
        assert acts == {"iam:ListPolicies"} or "${AWS::StackName}-registry" in res
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
