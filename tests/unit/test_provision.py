import json

import boto3
import pytest
from moto import mock_aws

from regvault.audit.posture import posture_findings
from regvault.aws.s3 import S3Store
from regvault.setup.identity import IamNames, InstanceAccess, ensure_identity, instance_policy, ssm_core_arn
from regvault.setup.provision import SetupError, associate_profile, ensure_bucket, tls_statement
from regvault.storage.layout import RegistryLayout

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


NAMES = IamNames.of("regvault", "eu-west-1")


def test_identity_chain_has_exactly_the_seed_actions_and_converges(aws):
    iam = aws["iam"]
    secrets = ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:registry-htpasswd-AbCdEf",)
    access = InstanceAccess("reg-bucket", "reg", region="eu-west-1", secret_arns=secrets)
    first = ensure_identity(iam, NAMES, access)
    assert set(first.changed) >= {"policy created", "role created", "instance profile created"}
    attached = {
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=NAMES.role)["AttachedPolicies"]
    }
    assert attached == {first.policy_arn, ssm_core_arn("aws")}
    profile = iam.get_instance_profile(InstanceProfileName=NAMES.profile)["InstanceProfile"]
    assert [r["RoleName"] for r in profile["Roles"]] == [NAMES.role]
    assert profile["Arn"].endswith(f":instance-profile/regvault/eu-west-1/regvault/{NAMES.profile}")
    role = iam.get_role(RoleName=NAMES.role)["Role"]
    assert role["Path"] == "/regvault/eu-west-1/regvault/"
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    doc = instance_policy(access)
    actions = {a for st in doc["Statement"] for a in st["Action"]}
    assert actions == SEED_S3_ACTIONS | {"secretsmanager:GetSecretValue"}
    assert doc["Statement"][1]["Resource"] == "arn:aws:s3:::reg-bucket/reg/*"
    assert doc["Statement"][2]["Resource"] == list(secrets)
    # idempotent
    assert ensure_identity(iam, NAMES, access).changed == []
    # drift: someone widened the policy; the next run converges it
    iam.create_policy_version(
        PolicyArn=first.policy_arn,
        SetAsDefault=True,
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
        ),
    )
    assert ensure_identity(iam, NAMES, access).changed == ["policy converged to the expected document"]
    policy = iam.get_policy(PolicyArn=first.policy_arn)["Policy"]
    current = iam.get_policy_version(PolicyArn=first.policy_arn, VersionId=policy["DefaultVersionId"])
    assert current["PolicyVersion"]["Document"] == doc


def test_same_stack_name_in_two_regions_gets_two_identities(aws):
    # IAM is global: a second region's deploy must not rewrite the first one's policy
    iam = aws["iam"]
    west, east = IamNames.of("regvault", "eu-west-1"), IamNames.of("regvault", "us-east-1")
    assert len({west.role, east.role}) == 2 and len({west.path, east.path}) == 2
    ensure_identity(iam, west, InstanceAccess("west-bucket", region="eu-west-1"))
    ensure_identity(iam, east, InstanceAccess("east-bucket", region="us-east-1"))
    for names, bucket in ((west, "west-bucket"), (east, "east-bucket")):
        [policy] = [p for p in iam.list_policies(Scope="Local", PathPrefix=names.path)["Policies"]]
        document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
        assert f"arn:aws:s3:::{bucket}" in json.dumps(document["PolicyVersion"]["Document"])


@pytest.mark.parametrize("stack", ["a", "x" * 128, "my-registry-stack-with-a-rather-long-name-1234567890"])
def test_iam_names_fit_iam_limits_for_any_stack_name(stack):
    names = IamNames.of(stack, "ap-southeast-4")
    assert len(names.role) <= 64 and len(names.profile) <= 128 and len(names.policy) <= 128
    assert len(names.path) <= 512 and names.path.startswith("/regvault/ap-southeast-4/")
    assert IamNames.of(stack, "ap-southeast-4") == names  # stable across runs


def test_other_partitions_get_their_own_arns():
    access = InstanceAccess("b", partition="aws-cn", region="cn-north-1")
    text = json.dumps(instance_policy(access)) + json.dumps(tls_statement("b", "aws-cn"))
    assert "arn:aws-cn:s3:::b" in text and "arn:aws:" not in text
    assert ssm_core_arn("aws-us-gov") == "arn:aws-us-gov:iam::aws:policy/AmazonSSMManagedInstanceCore"


def test_kms_and_private_ecr_grants_follow_what_the_instance_uses():
    key = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    access = InstanceAccess(
        "b",
        region="eu-west-1",
        account="123456789012",
        secret_keys=("alias/registry-tls",),
        bucket_key=key,
        ecr_repository="arn:aws:ecr:eu-west-1:123456789012:repository/mirror/registry",
    )
    statements = {st["Sid"]: st for st in instance_policy(access)["Statement"]}
    assert statements["BucketKey"]["Resource"] == [key]
    assert (
        statements["BucketKey"]["Condition"]["StringEquals"]["kms:ViaService"] == "s3.eu-west-1.amazonaws.com"
    )
    assert statements["SecretKeys"]["Resource"] == ["arn:aws:kms:eu-west-1:123456789012:key/*"]
    assert statements["EcrPullRegistryImage"]["Resource"].endswith("repository/mirror/registry")
    # an AWS managed key needs no grant; no ECR rights for an image from elsewhere
    plain = instance_policy(InstanceAccess("b", region="eu-west-1", bucket_key="aws/s3"))
    assert {st["Sid"] for st in plain["Statement"]} == {"RegistryBucket", "RegistryObjects"}


def test_adopted_bucket_in_another_region_is_refused(aws):
    boto3.client("s3", region_name="ap-south-1").create_bucket(
        Bucket="far", CreateBucketConfiguration={"LocationConstraint": "ap-south-1"}
    )
    with pytest.raises(SetupError, match="is in ap-south-1, the stack in eu-west-1"):
        ensure_bucket(aws["s3"], "far", "eu-west-1", "", 90)
    assert "Status" not in aws["s3"].get_bucket_versioning(Bucket="far")  # nothing written


def test_adopted_bucket_keeps_its_sse_kms_key(aws):
    s3 = aws["s3"]
    s3.create_bucket(Bucket="kms-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    rule = {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": "alias/reg"}}
    s3.put_bucket_encryption(Bucket="kms-bucket", ServerSideEncryptionConfiguration={"Rules": [rule]})
    result = ensure_bucket(s3, "kms-bucket", "eu-west-1", "", 90)
    assert result.kms_key == "alias/reg" and not any("encryption" in c for c in result.changed)
    got = s3.get_bucket_encryption(Bucket="kms-bucket")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert got["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == "alias/reg"


def _instance(ec2):
    image = next(
        i["ImageId"]
        for i in ec2.describe_images(Owners=["amazon"])["Images"]
        if i.get("Platform") != "windows"
    )
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]


def test_association_is_idempotent_and_replaces_only_when_asked(aws):
    iam, ec2 = aws["iam"], aws["ec2"]
    ours = ensure_identity(iam, NAMES, InstanceAccess("b", region="eu-west-1")).profile_arn
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
