"""The template itself: runtimes, build methods, and least privilege read from its policies."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.setup_local import load_template

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "regvault" / "regvault"
SAM = ROOT / ".venv-sam" / "bin" / "sam"
READ_ONLY_OBJECTS = {"s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject", "s3:GetObjectVersion"}
READ_ONLY = {
    "s3:ListBucket",
    "s3:ListBucketVersions",
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetBucketVersioning",
    "s3:GetLifecycleConfiguration",
    "s3:GetEncryptionConfiguration",
    "s3:GetBucketPublicAccessBlock",
    "s3:GetBucketPolicy",
}


def functions(template):
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}


def test_functions_are_python313_arm64_built_with_make(template):
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13" and glob["Architectures"] == ["arm64"]
    for name, fn in functions(template).items():
        assert fn["Metadata"]["BuildMethod"] == "makefile"
        makefile = (ROOT / fn["Properties"]["CodeUri"] / "Makefile").read_text()
        targets = [
            t
            for line in makefile.splitlines()
            if ":" in line and not line.startswith("\t")
            for t in line.split(":")[0].split()
        ]
        assert f"build-{name}" in targets
    layer = template["Resources"]["RegvaultLayer"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert "build-RegvaultLayer:" in (ROOT / "layers/regvault/Makefile").read_text()


def registry_bucket_actions(fn) -> set[str]:
    """Every action a function's policies grant on the registry bucket or its objects."""
    actions = set()
    for policy in fn["Properties"].get("Policies", []):
        for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
            if "BucketName" in json.dumps(statement["Resource"]):
                granted = statement["Action"]
                actions.update([granted] if isinstance(granted, str) else granted)
    return actions


@pytest.mark.parametrize(
    "name", ["CatalogFunction", "AuditFunction", "AuditWorkerFunction", "AuditReduceFunction"]
)
def test_function_is_read_only_on_the_registry_bucket(template, name):
    actions = registry_bucket_actions(functions(template)[name])
    assert actions, "the function reads the registry bucket"
    assert actions <= READ_ONLY
    for action in actions:
        assert "*" not in action and not action.startswith(("s3:Put", "s3:Delete", "s3:Restore", "s3:Abort"))


def test_restore_can_copy_forward_under_the_registry_prefix_and_never_delete(template):
    fn = functions(template)["RestoreFunction"]
    actions = registry_bucket_actions(fn)
    # s3:DeleteObject: on the writers' lease only (see the lease test below)
    assert actions == READ_ONLY_OBJECTS | {"s3:PutObject", "s3:DeleteObject"}
    statements = [
        s for p in fn["Properties"]["Policies"] if isinstance(p, dict) for s in p.get("Statement", [])
    ]
    put = next(s for s in statements if "s3:PutObject" in s["Action"])
    assert "/docker/registry/v2/*" in json.dumps(put["Resource"])
    registry = [s for s in statements if "/docker/registry/v2/*" in json.dumps(s["Resource"])]
    assert registry and "Delete" not in json.dumps(registry)  # no delete of any image object
    every_action = json.dumps(fn["Properties"]["Policies"])
    assert "DeleteObjectVersion" not in every_action and '"s3:*"' not in every_action


def test_audit_is_scheduled_daily_and_reports_elsewhere(template):
    fn = functions(template)["AuditFunction"]
    event = fn["Properties"]["Events"]["Nightly"]
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "AuditSchedule"}
    assert template["Parameters"]["AuditSchedule"]["Default"] == "cron(0 3 * * ? *)"
    env = fn["Properties"]["Environment"]["Variables"]
    assert env["REPORTS_BUCKET"] == {"Ref": "ReportsBucket"} and env["ALERT_TOPIC_ARN"] == {
        "Ref": "AlertsTopic"
    }
    writes = [
        s
        for p in fn["Properties"]["Policies"]
        if isinstance(p, dict)
        for s in p.get("Statement", [])
        if "s3:PutObject" in s["Action"]
    ]
    assert [s["Resource"] for s in writes] == [{"Sub": "${ReportsBucket.Arn}/audits/*"}]
    assert template["Resources"]["ReportsBucket"]["DeletionPolicy"] == "Retain"


def test_handlers_are_thin_and_import_no_boto3():
    for app in ROOT.glob("functions/*/app.py"):
        text = app.read_text()
        assert "import boto3" not in text and "botocore" not in text
        code = [line for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
        assert len(code) <= 60, app


@pytest.mark.slow
@pytest.mark.skipif(not SAM.exists(), reason="make install creates .venv-sam")
def test_sam_build_offline_builds_layer_for_arm64_py313(tmp_path):
    # Given no Docker (and, here, no python3.13): BuildMethod makefile fetches cp313 wheels
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    result = subprocess.run(
        [str(SAM), "build", "--build-dir", str(tmp_path / "build"), "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    layer = tmp_path / "build" / "RegvaultLayer" / "python"
    shipped = {p.relative_to(layer).as_posix() for p in (layer / "regvault").rglob("*.py")}
    core = {p.relative_to(ROOT / "layers" / "regvault").as_posix() for p in PACKAGE.rglob("*.py")}
    # every core module but the CLI (it needs rich, which the layer does not carry); no harness
    assert shipped == {m for m in core if not m.startswith("regvault/cli/")}
    assert not list(layer.glob("harness")) and not list(layer.glob("rich"))
    cores = list(layer.glob("pydantic_core/_pydantic_core*.so"))
    assert cores and "cpython-313-aarch64" in cores[0].name
    for name in functions(load_template()):
        assert sorted(p.name for p in (tmp_path / "build" / name).iterdir()) == ["app.py"]
    assert list(layer.glob("cryptography/hazmat/bindings/_rust.abi3.so"))  # the self-signed certificate
    assert list(layer.glob("bcrypt/_bcrypt.abi3.so"))  # htpasswd entries


def test_samconfig_overrides_name_real_parameters_with_allowed_values(template):
    import shlex
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for env in ("default", "dev"):
        overrides = config[env]["deploy"]["parameters"]["parameter_overrides"]
        for pair in shlex.split(overrides):
            name, _, value = pair.partition("=")
            parameter = template["Parameters"][name]  # KeyError: a parameter the template does not have
            if "AllowedValues" in parameter:
                assert value in [str(v) for v in parameter["AllowedValues"]], (env, name, value)
            if "AllowedPattern" in parameter:
                import re

                assert re.fullmatch(parameter["AllowedPattern"], value), (env, name, value)
    required = {n for n, p in template["Parameters"].items() if "Default" not in p}
    assert required == {"InstanceId", "BucketName"}  # asked by `sam deploy --guided`


def test_restore_may_take_the_lease_only_and_gc_may_not_delete_versions(template):
    policies = functions(template)["RestoreFunction"]["Properties"]["Policies"]
    restore = [s for p in policies if isinstance(p, dict) for s in p.get("Statement", [])]
    # the restore takes the writers' lease while it copies (and lets go with a delete marker): it may
    # delete that one key, nothing else, and never a version
    deletes = [s for s in restore if "s3:DeleteObject" in s["Action"]]
    assert len(deletes) == 1 and "DeleteObjectVersion" not in json.dumps(restore)
    for resource in deletes[0]["Resource"]["If"][1:]:
        assert resource["Sub"].endswith("/regvault/lease.json"), resource
    gc = functions(template)["GcFunction"]["Properties"]["Policies"]
    statements = [s for p in gc if isinstance(p, dict) for s in p.get("Statement", [])]
    deletes = [s for s in statements if "s3:DeleteObject" in s["Action"]]
    assert deletes and all("DeleteObjectVersion" not in json.dumps(s) for s in statements)
    for statement in deletes:  # only under the registry prefix and regvault's own folder
        text = json.dumps(statement["Resource"])
        assert "/docker/registry/v2/*" in text or "/regvault/*" in text, text
