"""The preflight (first setup step; `regvault setup --preflight`): read-only, all problems at once."""

import json

import boto3
import pytest
from moto import mock_aws

from harness import ssm_agent
from regvault.cli.main import main


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        ssm_agent.model_ssm_agent()
        yield {n: boto3.client(n, region_name="eu-west-1") for n in ("ec2", "s3", "iam", "secretsmanager")}


def instance(ec2, windows=False):
    images = ec2.describe_images(Owners=["amazon"])["Images"]
    image = next(i["ImageId"] for i in images if (i.get("Platform") == "windows") == windows)
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def preflight(capsys, *argv):
    code = main(["setup", "--preflight", "--region", "eu-west-1", "--format", "json", *argv])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out else None), err


def snapshot(aws):
    return (
        aws["s3"].list_buckets()["Buckets"],
        aws["iam"].list_roles()["Roles"],
        aws["ec2"].describe_iam_instance_profile_associations()["IamInstanceProfileAssociations"],
        aws["secretsmanager"].list_secrets()["SecretList"],
    )


def test_every_problem_is_reported_at_once_with_its_remedy_and_nothing_is_written(aws, capsys):
    # Given a Windows instance with someone else's profile, a bucket in another region, a missing TLS secret
    ec2 = aws["ec2"]
    target = instance(ec2, windows=True)
    theirs = aws["iam"].create_instance_profile(InstanceProfileName="theirs")["InstanceProfile"]["Arn"]
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": theirs}, InstanceId=target)
    boto3.client("s3", region_name="ap-south-1").create_bucket(
        Bucket="far-bucket", CreateBucketConfiguration={"LocationConstraint": "ap-south-1"}
    )
    before = snapshot(aws)
    code, report, _ = preflight(
        capsys,
        *("--stack-name", "regvault", "--instance-id", target, "--bucket", "far-bucket"),
        *("--tls-secret-arn", "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-AbCdEf"),
    )
    assert code == 1 and report["ok"] is False
    problems = "\n".join(report["problems"])
    assert len(report["problems"]) == 4, problems
    assert "runs Windows" in problems
    assert "ReplaceExistingProfile=true" in problems
    assert "far-bucket is in ap-south-1, the stack in eu-west-1" in problems
    assert "TLS secret" in problems and "cannot be read here" in problems
    assert snapshot(aws) == before  # read-only


def test_a_ready_instance_passes_with_notes(aws, capsys):
    target = instance(aws["ec2"])
    code, report, _ = preflight(
        capsys, "--stack-name", "regvault", "--instance-id", target, "--bucket", "new-registry-bucket"
    )
    assert code == 0 and report["problems"] == []
    notes = "\n".join(report["notes"])
    assert "new-registry-bucket will be created in eu-west-1" in notes
    assert "backs off for up to a day" in notes and "AllowReboot=true" in notes
    assert report["endpoint"].endswith(":443")


def test_an_instance_of_another_region_and_missing_flags(aws, capsys):
    code, report, _ = preflight(
        capsys, "--stack-name", "regvault", "--instance-id", "i-0123456789abcdef0", "--bucket", "b-bucket"
    )
    assert code == 1 and "is not in eu-west-1 of this account" in report["problems"][0]
    code, _, err = preflight(capsys, "--instance-id", "i-0123456789abcdef0")
    assert code == 2 and "needs --stack-name, --bucket" in err
    assert main(["setup"]) == 2
    assert "give --state-machine-arn" in capsys.readouterr().err


def test_metadata_service_disabled_is_a_problem(aws, capsys):
    target = instance(aws["ec2"])
    aws["ec2"].modify_instance_metadata_options(InstanceId=target, HttpEndpoint="disabled")
    code, report, _ = preflight(capsys, "--stack-name", "s", "--instance-id", target, "--bucket", "b-bucket")
    assert code == 1 and "metadata service is disabled" in report["problems"][0]
