"""The registry instance's identity: a managed policy, a role trusted by EC2 with that policy and
AmazonSSMManagedInstanceCore, and an instance profile holding the role. Every step converges.

IAM names are global while stacks are regional, so names carry a hash of partition, region and stack
and live under a path the setup's own policy is scoped to (see IamNames).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from regvault.aws.errors import expected
from regvault.errors import AwsCallFailed, InvalidInput
from regvault.storage.layout import normalize_root

ROLE_NAME_MAX = 64  # IAM's limit for role names (profiles and policies allow 128)


@dataclass(frozen=True)
class IamNames:
    """IAM names are global to the account while stacks are regional: the same stack name deployed
    in two regions must not share (and rewrite) one role. Each name carries a hash of partition,
    region and stack, and lives under the path ``/regvault/<region>/<stack>/`` so that the setup's
    own policy can be scoped to exactly this stack's names (``role/regvault/<region>/<stack>/*``)."""

    role: str
    policy: str
    profile: str
    path: str

    @classmethod
    def of(cls, stack: str, region: str, partition: str = "aws") -> IamNames:
        if not stack or len(stack) > 128:
            raise InvalidInput("the stack name is 1 to 128 characters")
        digest = hashlib.sha256(f"{partition}/{region}/{stack}".encode()).hexdigest()[:8]
        base = f"{stack[: ROLE_NAME_MAX - len('-12345678-registry')]}-{digest}"
        return cls(
            role=f"{base}-registry",
            policy=f"{base}-registry-access",
            profile=f"{base}-registry",
            path=f"/regvault/{region}/{stack}/",
        )


SSM_CORE = "AmazonSSMManagedInstanceCore"


def ssm_core_arn(partition: str) -> str:
    return f"arn:{partition}:iam::aws:policy/{SSM_CORE}"


@dataclass(frozen=True)
class InstanceAccess:
    """What the registry's instance needs: its bucket (objects under the root only), the secrets it
    reads at launch (htpasswd and TLS, never the users' plaintext passwords) and the KMS keys behind
    them, and the private ECR repository of its image when it comes from one."""

    bucket: str
    root: str = ""
    partition: str = "aws"
    region: str = ""
    account: str = ""
    secret_arns: tuple[str, ...] = ()
    secret_keys: tuple[str, ...] = ()  # customer KMS keys of those secrets
    bucket_key: str | None = None  # the bucket's default SSE-KMS key
    # ARNs of private ECR repositories holding the registry, aws-cli or UI image (pull rights)
    ecr_repository: str | list[str] | None = None


def kms_resource(key: str, access: InstanceAccess) -> str | None:
    """An IAM resource for a KMS key as S3 or Secrets Manager name it (key ARN, key id, alias); None
    for AWS managed keys (aws/s3, aws/secretsmanager), whose key policies already allow the account."""
    if key.startswith("aws/") or key.startswith("alias/aws/") or ":alias/aws/" in key:
        return None
    if key.startswith("arn:") and ":key/" in key:
        return key
    # a key id or a customer alias: any key of the account, used only through the service (condition)
    return f"arn:{access.partition}:kms:{access.region}:{access.account or '*'}:key/*"


def instance_policy(access: InstanceAccess) -> dict[str, Any]:
    """The registry instance's policy: the seed's S3 actions on the bucket (objects under the root
    only), read of exactly the registry's instance secrets, and the KMS and ECR rights those need."""
    root = normalize_root(access.root)
    bucket_arn = f"arn:{access.partition}:s3:::{access.bucket}"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "RegistryBucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"],
            "Resource": bucket_arn,
        },
        {
            "Sid": "RegistryObjects",
            "Effect": "Allow",
            "Action": [
                "s3:PutObject",
                "s3:GetObject",
                "s3:DeleteObject",
                "s3:ListMultipartUploadParts",
                "s3:AbortMultipartUpload",
            ],
            "Resource": f"{bucket_arn}/{root}/*" if root else f"{bucket_arn}/*",
        },
    ]
    if access.secret_arns:
        statements.append(
            {
                "Sid": "RegistrySecrets",
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                "Resource": sorted(access.secret_arns),
            }
        )
    for sid, keys, actions, service in (
        (
            "BucketKey",
            [access.bucket_key] if access.bucket_key else [],
            ["kms:Decrypt", "kms:GenerateDataKey"],
            "s3",
        ),
        ("SecretKeys", list(access.secret_keys), ["kms:Decrypt"], "secretsmanager"),
    ):
        resources = sorted({r for k in keys if (r := kms_resource(k, access))})
        if resources:
            statements.append(
                {
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": actions,
                    "Resource": resources,
                    "Condition": {
                        "StringEquals": {"kms:ViaService": f"{service}.{access.region}.amazonaws.com"}
                    },
                }
            )
    if access.ecr_repository:
        statements += [
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": ["ecr:GetAuthorizationToken"], "Resource": "*"},
            {
                "Sid": "EcrPullRegistryImage",
                "Effect": "Allow",
                "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                "Resource": access.ecr_repository,
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}


def ec2_trust(partition: str) -> dict[str, Any]:
    service = "ec2.amazonaws.com.cn" if partition == "aws-cn" else "ec2.amazonaws.com"
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
    }


@dataclass
class IdentityResult:
    policy_arn: str
    role_name: str
    profile_arn: str
    profile_name: str
    changed: list[str] = field(default_factory=list)


def ensure_identity(iam: Any, names: IamNames, access: InstanceAccess) -> IdentityResult:
    """Managed policy, role trusted by EC2 with that policy and AmazonSSMManagedInstanceCore, and an
    instance profile holding the role. Converges a drifted policy by adding a default version.

    Adding the role to the profile needs ``iam:PassRole`` on the role besides
    ``iam:AddRoleToInstanceProfile`` (the template grants it, for ec2.amazonaws.com only)."""
    changed: list[str] = []
    policy_arn = _ensure_policy(iam, names, instance_policy(access), changed)
    try:
        with expected("NoSuchEntity"):
            iam.get_role(RoleName=names.role)
    except AwsCallFailed:
        iam.create_role(
            RoleName=names.role,
            Path=names.path,
            AssumeRolePolicyDocument=json.dumps(ec2_trust(access.partition)),
            Description="regvault registry instance",
        )
        changed.append("role created")
    attached = {
        p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=names.role)["AttachedPolicies"]
    }
    for arn in (policy_arn, ssm_core_arn(access.partition)):
        if arn not in attached:
            iam.attach_role_policy(RoleName=names.role, PolicyArn=arn)
            changed.append(f"attached {arn.rsplit('/', 1)[-1]}")
    try:
        with expected("NoSuchEntity"):
            profile = iam.get_instance_profile(InstanceProfileName=names.profile)["InstanceProfile"]
    except AwsCallFailed:
        profile = iam.create_instance_profile(InstanceProfileName=names.profile, Path=names.path)[
            "InstanceProfile"
        ]
        changed.append("instance profile created")
    if names.role not in {r["RoleName"] for r in profile.get("Roles", [])}:
        iam.add_role_to_instance_profile(InstanceProfileName=names.profile, RoleName=names.role)
        changed.append("role added to the instance profile")
    return IdentityResult(policy_arn, names.role, profile["Arn"], names.profile, changed)


def _ensure_policy(iam: Any, names: IamNames, document: dict[str, Any], changed: list[str]) -> str:
    arn = None
    for page in iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=names.path):
        arn = next((p["Arn"] for p in page["Policies"] if p["PolicyName"] == names.policy), arn)
    if arn is None:
        created = iam.create_policy(
            PolicyName=names.policy, Path=names.path, PolicyDocument=json.dumps(document)
        )["Policy"]
        changed.append("policy created")
        return str(created["Arn"])
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"][
        "Document"
    ]
    if isinstance(current, str):
        current = json.loads(current)
    if current != document:
        versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
        if len(versions) >= 5:  # IAM keeps five; drop the oldest non-default one
            oldest = min((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
            iam.delete_policy_version(PolicyArn=arn, VersionId=oldest["VersionId"])
        iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)
        changed.append("policy converged to the expected document")
    return str(arn)
