import json

import boto3
import pytest
from moto import mock_aws

from regvault.audit import posture_findings
from regvault.aws import S3Store
from regvault.layout import RegistryLayout
from regvault.provision import (
    SSM_CORE,
    SetupError,
    associate_profile,
    ensure_bucket,
    ensure_identity,
    instance_policy,
)

SEED_S3_ACTIONS = {
    "s3:ListBucket",
    "s3:GetBucketLocation",
    "s3:ListBucketMultipartUploads",
    "s3:PutObject",
    "s3:GetObject",
    "s3:DeleteObject",
    "s3:ListMultipartUploadParts",
    "s3:AbortMultipartUpload",
}


@pytest.fixture
def aws():
    with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
        yield {name: boto3.client(name, region_name="eu-west-1") for name in ("s3", "iam", "ec2")}


def test_new_bucket_gets_every_setting_and_a_rerun_changes_nothing(aws):
    s3 = aws["s3"]
    first = ensure_bucket(s3, "reg-bucket", "eu-west-1", "/reg", 90)
    assert first.created and len(first.changed) == 5
    assert s3.get_bucket_versioning(Bucket="reg-bucket")["Status"] == "Enabled"
    rules = s3.get_bucket_lifecycle_configuration(Bucket="reg-bucket")["Rules"]
    keep = next(r for r in rules if r["ID"] == "regvault-recovery-window")
    assert keep["NoncurrentVersionExpiration"]["NoncurrentDays"] == 90 and keep["Filter"]["Prefix"] == "reg/"
    again = ensure_bucket(s3, "reg-bucket", "eu-west-1", "reg", 90)
    assert not again.created and again.changed == [] and again.notes == []
    # the audit agrees: only the recovery window is reported
    posture = S3Store("reg-bucket", s3).posture()
    findings, window = posture_findings(posture, RegistryLayout("reg"))
    assert [f.code for f in findings] == ["NONCURRENT_EXPIRATION"] and window == 90


def test_existing_bucket_is_adopted_without_touching_objects_or_shrinking_retention(aws):
    s3 = aws["s3"]
    s3.create_bucket(Bucket="old", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_bucket_versioning(Bucket="old", VersioningConfiguration={"Status": "Enabled"})
    s3.put_object(Bucket="old", Key="docker/registry/v2/blobs/x", Body=b"data")
    other = {
        "Sid": "Mine",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:DeleteBucket",
        "Resource": "arn:aws:s3:::old",
    }
    s3.put_bucket_policy(Bucket="old", Policy=json.dumps({"Version": "2012-10-17", "Statement": [other]}))
    s3.put_bucket_lifecycle_configuration(
        Bucket="old",
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "regvault-recovery-window",
                    "Status": "Enabled",
                    "Filter": {"Prefix": ""},
                    "NoncurrentVersionExpiration": {"NoncurrentDays": 365},
                }
            ]
        },
    )
    before = s3.list_object_versions(Bucket="old")["Versions"]
    result = ensure_bucket(s3, "old", "eu-west-1", "", 30)
    assert not result.created and result.recovery_window_days == 365
    assert "kept the existing recovery window of 365 days" in result.notes[0]
    assert s3.list_object_versions(Bucket="old")["Versions"] == before
    statements = json.loads(s3.get_bucket_policy(Bucket="old")["Policy"])["Statement"]
    assert statements[0] == other and statements[1]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_bucket_owned_elsewhere_is_a_clear_error(aws, monkeypatch):
    from botocore.exceptions import ClientError

    def forbidden(**_):
        raise ClientError({"Error": {"Code": "403", "Message": "Forbidden"}}, "HeadBucket")

    monkeypatch.setattr(aws["s3"], "head_bucket", forbidden)
    with pytest.raises(SetupError, match="owned by another account"):
        ensure_bucket(aws["s3"], "theirs", "eu-west-1", "", 90)


def test_identity_chain_has_exactly_the_seed_actions_and_converges(aws):
    iam = aws["iam"]
    secrets = ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry-htpasswd-AbCdEf"]
    first = ensure_identity(iam, "regvault-registry", "reg-bucket", "reg", secrets)
    assert set(first.changed) >= {"policy created", "role created", "instance profile created"}
    attached = {
        p["PolicyArn"]
        for p in iam.list_attached_role_policies(RoleName="regvault-registry")["AttachedPolicies"]
    }
    assert attached == {first.policy_arn, SSM_CORE}
    profile = iam.get_instance_profile(InstanceProfileName="regvault-registry")["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == ["regvault-registry"]
    trust = iam.get_role(RoleName="regvault-registry")["Role"]["AssumeRolePolicyDocument"]
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    doc = instance_policy("reg-bucket", "reg", secrets)
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    assert actions == SEED_S3_ACTIONS | {"secretsmanager:GetSecretValue"}
    assert doc["Statement"][1]["Resource"] == "arn:aws:s3:::reg-bucket/reg/*"
    assert doc["Statement"][2]["Resource"] == secrets
    # idempotent
    assert ensure_identity(iam, "regvault-registry", "reg-bucket", "reg", secrets).changed == []
    # drift: someone widened the policy; the next run converges it
    iam.create_policy_version(
        PolicyArn=first.policy_arn,
        SetAsDefault=True,
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    assert ensure_identity(iam, "regvault-registry", "reg-bucket", "reg", secrets).changed == [
        "policy converged to the expected document"
    ]
    policy = iam.get_policy(PolicyArn=first.policy_arn)["Policy"]
    current = iam.get_policy_version(PolicyArn=first.policy_arn, VersionId=policy["DefaultVersionId"])
    assert current["PolicyVersion"]["Document"] == doc


def _instance(ec2):
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def test_association_is_idempotent_and_replaces_only_when_asked(aws):
    iam, ec2 = aws["iam"], aws["ec2"]
    ours = ensure_identity(iam, "regvault-registry", "b", "", []).profile_arn
    theirs = iam.create_instance_profile(InstanceProfileName="someone-else")["InstanceProfile"]["Arn"]
    instance = _instance(ec2)
    assert associate_profile(ec2, instance, ours, replace_existing=False) == "associated"
    assert associate_profile(ec2, instance, ours, replace_existing=False) == "already associated"
    other = _instance(ec2)
    ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": theirs}, InstanceId=other)
    with pytest.raises(SetupError, match="set ReplaceExistingProfile=true"):
        associate_profile(ec2, other, ours, replace_existing=False)
    assert associate_profile(ec2, other, ours, replace_existing=True) == "replaced"
    current = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [other]}]
    )["IamInstanceProfileAssociations"]
    assert [a["IamInstanceProfile"]["Arn"] for a in current if a["State"] == "associated"] == [ours]
    with pytest.raises(SetupError, match="not found"):
        associate_profile(ec2, "i-0000000000000dead", ours, replace_existing=False)
