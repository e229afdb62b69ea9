"""Setup steps: the registry's bucket, the IAM chain for its instance, and the profile association.

Every step is idempotent and converges: run it again and it changes only what drifted. Nothing here
ever deletes a bucket, an object or an object version.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .aws import (
    ClientError,
    bucket_policy,
    encryption_rules,
    error_code,
    lifecycle_rules,
    public_access_block,
)
from .errors import InvalidInput, RegvaultError
from .layout import normalize_root


class SetupError(RegvaultError):
    """A setup step cannot proceed; the message says what to change."""


def partition_of(region: str) -> str:
    """The ARN partition of a region (the template passes AWS::Partition; this is the fallback)."""
    for prefix, partition in (
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("us-isof-", "aws-iso-f"),
    ):
        if region.startswith(prefix):
            return partition
    return "aws"


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


# --- storage -----------------------------------------------------------------------------------

TLS_SID = "RegvaultDenyInsecureTransport"
LIFECYCLE_KEEP = "regvault-recovery-window"
LIFECYCLE_ABORT = "regvault-abort-incomplete-uploads"


@dataclass
class StorageResult:
    bucket: str
    created: bool
    changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recovery_window_days: int = 0
    # the bucket's default SSE-KMS key, kept as it is: the registry then writes with encrypt: false
    # (distribution's encrypt: true would send AES256 and override it) and its role may use the key
    kms_key: str | None = None


def bucket_region(s3: Any, bucket: str) -> str:
    """The region a bucket lives in (GetBucketLocation: None means us-east-1, "EU" eu-west-1)."""
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    return str({None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location))


def kms_key_of(rules: list[dict[str, Any]]) -> str | None:
    """The KMS key of a bucket's default encryption (SSE-KMS / DSSE-KMS), if it names one."""
    for rule in rules:
        default = rule.get("ApplyServerSideEncryptionByDefault", {})
        if str(default.get("SSEAlgorithm", "")).startswith("aws:kms"):
            return str(default.get("KMSMasterKeyID") or "aws/s3")
    return None


def ensure_bucket(s3: Any, bucket: str, region: str, root: str, recovery_days: int) -> StorageResult:
    """Create or adopt the registry bucket and converge its settings (never touches objects).

    Versioning on; default encryption (kept if already set, e.g. SSE-KMS); public access blocked; a
    policy statement denying non-TLS requests (added next to existing statements); lifecycle: noncurrent
    versions kept ``recovery_days`` (an existing longer window is kept and reported), incomplete multipart
    uploads aborted after 7 days. Upload scratch under ``<repo>/_uploads/`` cannot be targeted by an S3
    lifecycle prefix (it sits below every repository), so it ages out with the recovery window and the
    audit reports stale uploads.
    """
    if not 1 <= recovery_days <= 3650:
        raise InvalidInput("the recovery window is 1 to 3650 days")
    result = StorageResult(bucket, created=False, recovery_window_days=recovery_days)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
            params: dict[str, Any] = {"Bucket": bucket}
            if region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": region}
            s3.create_bucket(**params)
            result.created = True
        elif error_code(exc) in ("403", "AccessDenied"):
            raise SetupError(
                f"bucket {bucket!r} exists but this account cannot use it (owned by another account?)"
            ) from None
        else:
            raise
    if not result.created and (found := bucket_region(s3, bucket)) != region:
        raise SetupError(
            f"bucket {bucket!r} is in {found}, the stack in {region}: deploy the stack in {found} or "
            "choose another BucketName (the registry and its bucket belong in one region)"
        )
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        result.changed.append("versioning enabled")
    existing_encryption = encryption_rules(s3, bucket)
    result.kms_key = kms_key_of(existing_encryption)
    if not existing_encryption:  # an existing default (e.g. SSE-KMS) is kept
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    {
                        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                        "BucketKeyEnabled": True,
                    }
                ]
            },
        )
        result.changed.append("default encryption (SSE-S3)")
    block = dict.fromkeys(
        ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"), True
    )
    if public_access_block(s3, bucket) != block:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block)
        result.changed.append("public access blocked")
    _ensure_tls_policy(s3, bucket, partition_of(region), result)
    _ensure_lifecycle(s3, bucket, normalize_root(root), recovery_days, result)
    return result


def tls_statement(bucket: str, partition: str = "aws") -> dict[str, Any]:
    return {
        "Sid": TLS_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:{partition}:s3:::{bucket}", f"arn:{partition}:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _ensure_tls_policy(s3: Any, bucket: str, partition: str, result: StorageResult) -> None:
    existing = bucket_policy(s3, bucket)
    policy: dict[str, Any] = json.loads(existing) if existing else {"Version": "2012-10-17", "Statement": []}
    statements: Any = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    wanted = tls_statement(bucket, partition)
    if wanted in statements:
        return
    policy["Statement"] = [st for st in statements if st.get("Sid") != TLS_SID] + [wanted]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    result.changed.append("bucket policy denies non-TLS requests")


def _ensure_lifecycle(s3: Any, bucket: str, root: str, days: int, result: StorageResult) -> None:
    rules = lifecycle_rules(s3, bucket)
    prefix = f"{root}/" if root else ""
    keep = next((r for r in rules if r.get("ID") == LIFECYCLE_KEEP), None)
    existing = (keep or {}).get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
    if isinstance(existing, int) and existing > days:
        result.notes.append(
            f"kept the existing recovery window of {existing} days (longer than the {days} asked for); "
            "shorten it by hand if that is really wanted"
        )
        days = existing
    result.recovery_window_days = days
    wanted: list[dict[str, Any]] = [
        {
            "ID": LIFECYCLE_KEEP,
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "NoncurrentVersionExpiration": {"NoncurrentDays": days},
            "Expiration": {"ExpiredObjectDeleteMarker": True},
        },
        {
            "ID": LIFECYCLE_ABORT,
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7},
        },
    ]
    others = [r for r in rules if r.get("ID") not in (LIFECYCLE_KEEP, LIFECYCLE_ABORT)]
    mine = [r for r in rules if r.get("ID") in (LIFECYCLE_KEEP, LIFECYCLE_ABORT)]
    if sorted(mine, key=lambda r: str(r["ID"])) != sorted(wanted, key=lambda r: str(r["ID"])):
        s3.put_bucket_lifecycle_configuration(
            Bucket=bucket, LifecycleConfiguration={"Rules": others + wanted}
        )
        result.changed.append(
            f"lifecycle: noncurrent versions kept {days} days, stale multipart uploads aborted"
        )


# --- identity ----------------------------------------------------------------------------------

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
    ecr_repository: str | None = None  # arn of a private ECR repository holding the image


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
        iam.get_role(RoleName=names.role)
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
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
        profile = iam.get_instance_profile(InstanceProfileName=names.profile)["InstanceProfile"]
    except ClientError as exc:
        if error_code(exc) != "NoSuchEntity":
            raise
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


# --- association ---------------------------------------------------------------------------------


def associate_profile(ec2: Any, instance_id: str, profile_arn: str, replace_existing: bool) -> str:
    """Associate the instance profile; 'associated', 'already associated' or 'replaced'."""
    try:
        ec2.describe_instances(InstanceIds=[instance_id])
    except ClientError as exc:
        if error_code(exc) in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
            raise SetupError(f"instance {instance_id} not found in this account and region") from None
        raise
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    live = [a for a in associations if a.get("State") in ("associating", "associated")]
    if not live:
        ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": profile_arn}, InstanceId=instance_id)
        return "associated"
    current = live[0]
    if current["IamInstanceProfile"]["Arn"] == profile_arn:
        return "already associated"
    if not replace_existing:
        raise SetupError(
            f"instance {instance_id} already has instance profile {current['IamInstanceProfile']['Arn']}; "
            "set ReplaceExistingProfile=true to replace it (its role loses access to the instance)"
        )
    ec2.replace_iam_instance_profile_association(
        IamInstanceProfile={"Arn": profile_arn}, AssociationId=current["AssociationId"]
    )
    return "replaced"
