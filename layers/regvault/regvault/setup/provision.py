"""Setup steps: the registry's bucket, the IAM chain for its instance, and the profile association.

Every step is idempotent and converges: run it again and it changes only what drifted. Nothing here
ever deletes a bucket, an object or an object version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from regvault.aws.errors import expected
from regvault.aws.s3 import bucket_policy, encryption_rules, lifecycle_rules, public_access_block
from regvault.errors import AwsCallFailed, InvalidInput, RegvaultError
from regvault.storage.layout import normalize_root

# AWS error codes, as HeadBucket and DescribeInstances answer them
BUCKET_MISSING = ("404", "NoSuchBucket", "NotFound")
BUCKET_FORBIDDEN = ("403", "AccessDenied")
INSTANCE_MISSING = ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed")


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


def ensure_bucket(
    s3: Any, bucket: str, region: str, root: str, recovery_days: int, events: bool = False
) -> StorageResult:
    """Create or adopt the registry bucket and converge its settings (never touches objects).

    Versioning on; default encryption (kept if already set, e.g. SSE-KMS); public access blocked; a
    policy statement denying non-TLS requests (added next to existing statements); lifecycle: noncurrent
    versions kept ``recovery_days`` (an existing longer window is kept and reported), incomplete multipart
    uploads aborted after 7 days; with ``events`` (the guard) object events go to EventBridge (the bucket's
    other notifications kept). Upload scratch under ``<repo>/_uploads/`` cannot be targeted by an S3
    lifecycle prefix (it sits below every repository), so it ages out with the recovery window and the
    audit reports stale uploads.
    """
    if not 1 <= recovery_days <= 3650:
        raise InvalidInput("the recovery window is 1 to 3650 days")
    result = StorageResult(bucket, created=False, recovery_window_days=recovery_days)
    try:
        with expected(*BUCKET_MISSING, *BUCKET_FORBIDDEN):
            s3.head_bucket(Bucket=bucket)
    except AwsCallFailed as exc:
        if exc.code in BUCKET_FORBIDDEN:
            raise SetupError(
                f"bucket {bucket!r} exists but this account cannot use it (owned by another account?)"
            ) from None
        params: dict[str, Any] = {"Bucket": bucket}
        if region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**params)
        result.created = True
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
    if events:
        _ensure_event_bridge(s3, bucket, result)
    return result


def _ensure_event_bridge(s3: Any, bucket: str, result: StorageResult) -> None:
    """Turn on delivery to EventBridge, keeping the bucket's other notification targets (a put replaces
    the whole configuration)."""
    config = s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    if "EventBridgeConfiguration" in config:
        return
    config["EventBridgeConfiguration"] = {}
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)
    result.changed.append("object events sent to EventBridge (the protected-tags guard)")


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


# --- association ---------------------------------------------------------------------------------


def live_association(ec2: Any, instance_id: str) -> dict[str, Any] | None:
    """The instance's current profile association (associating or associated), if any."""
    associations = ec2.describe_iam_instance_profile_associations(
        Filters=[{"Name": "instance-id", "Values": [instance_id]}]
    )["IamInstanceProfileAssociations"]
    live = [a for a in associations if a.get("State") in ("associating", "associated")]
    return dict(live[0]) if live else None


def associate_profile(ec2: Any, instance_id: str, profile_arn: str, replace_existing: bool) -> str:
    """Associate the instance profile; 'associated', 'already associated' or 'replaced'."""
    try:
        with expected(*INSTANCE_MISSING):
            ec2.describe_instances(InstanceIds=[instance_id])
    except AwsCallFailed:
        raise SetupError(f"instance {instance_id} not found in this account and region") from None
    current = live_association(ec2, instance_id)
    if current is None:
        ec2.associate_iam_instance_profile(IamInstanceProfile={"Arn": profile_arn}, InstanceId=instance_id)
        return "associated"
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
