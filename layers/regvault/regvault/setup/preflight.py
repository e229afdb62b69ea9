"""Preflight: everything a first deploy needs, checked before any resource is touched.

Read-only (Describe/Get/Head calls only). Reports *every* problem at once, each with its remedy, so a
user fixes them in one go instead of one failed deploy at a time. Notes are facts worth knowing that
do not stop the setup (a bucket that will be created, a KMS key that will be used, the agent's back-off).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from regvault.aws.errors import expected
from regvault.aws.s3 import encryption_rules
from regvault.errors import AwsCallFailed, InvalidInput
from regvault.setup.identity import IamNames
from regvault.setup.launch import ecr_repository_arn, is_managed
from regvault.setup.provision import (
    BUCKET_FORBIDDEN,
    BUCKET_MISSING,
    INSTANCE_MISSING,
    bucket_region,
    kms_key_of,
    live_association,
)
from regvault.setup.secrets import secret_kms_key


@dataclass
class Preflight:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    endpoint: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "problems": self.problems,
            "notes": self.notes,
            "endpoint": self.endpoint,
            # one line for the custom resource's failure reason (CloudFormation shows it)
            "summary": f"{len(self.problems)} problem(s): " + " | ".join(self.problems),
        }


class Target(Protocol):
    """What the preflight checks (the setup's SetupConfig is one): the custom resource's properties, or
    `regvault setup --preflight`'s flags before a first deploy."""

    @property
    def name(self) -> str: ...  # the stack
    @property
    def region(self) -> str: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def bucket(self) -> str: ...
    @property
    def partition(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def image(self) -> str: ...
    @property
    def tls_secret_arn(self) -> str: ...
    @property
    def replace_existing_profile(self) -> bool: ...
    @property
    def allow_reboot(self) -> bool: ...


def run(target: Target, ec2: Any, ssm: Any, s3: Any, sm: Any) -> Preflight:
    report = Preflight()
    _names(target, report)
    instance = _instance(target, ec2, report)
    if instance is not None:
        _profile(target, ec2, report)
        _metadata(instance, report)
        _agent(target, ssm, report)
    _bucket(target, s3, report)
    _tls_secret(target, sm, report)
    _image(target, report)
    return report


def _names(target: Target, report: Preflight) -> None:
    try:
        names = IamNames.of(target.name, target.region, target.partition)
    except InvalidInput as exc:
        report.problems.append(f"{exc}: choose a shorter stack name")
        return
    report.notes.append(f"IAM names: role {names.role} under path {names.path} (unique per region)")


def _instance(target: Target, ec2: Any, report: Preflight) -> dict[str, Any] | None:
    try:
        with expected(*INSTANCE_MISSING):
            reservations = ec2.describe_instances(InstanceIds=[target.instance_id])["Reservations"]
    except AwsCallFailed:
        report.problems.append(
            f"instance {target.instance_id} is not in {target.region} of this account: deploy the "
            "stack in the instance's region, or correct InstanceId"
        )
        return None
    instance: dict[str, Any] = reservations[0]["Instances"][0]
    state = instance.get("State", {}).get("Name")
    if state != "running":
        report.problems.append(
            f"instance {target.instance_id} is {state}: start it (the launch runs on it through SSM)"
        )
    if str(instance.get("Platform", "")).lower() == "windows":
        report.problems.append(
            f"instance {target.instance_id} runs Windows: the launch needs Amazon Linux 2023 or Ubuntu"
        )
    host = instance.get("PublicDnsName") or instance.get("PrivateDnsName") or instance.get("PrivateIpAddress")
    report.endpoint = f"{host or target.instance_id}:{target.port}"
    return instance


def _profile(target: Target, ec2: Any, report: Preflight) -> None:
    current = live_association(ec2, target.instance_id)
    if current is None:
        return
    names = IamNames.of(target.name, target.region, target.partition)
    arn = str(current["IamInstanceProfile"]["Arn"])
    if arn.endswith(f"{names.path}{names.profile}"):
        report.notes.append("the instance already has this stack's instance profile")
    elif target.replace_existing_profile:
        report.notes.append(f"instance profile {arn} will be replaced (ReplaceExistingProfile=true)")
    else:
        report.problems.append(
            f"instance {target.instance_id} already has instance profile {arn}: redeploy with "
            "ReplaceExistingProfile=true to replace it (its role loses access to the instance)"
        )


def _metadata(instance: dict[str, Any], report: Preflight) -> None:
    options = instance.get("MetadataOptions", {})
    if options.get("HttpEndpoint") == "disabled":
        report.problems.append(
            "the instance metadata service is disabled, so the registry gets no credentials: aws ec2 "
            f"modify-instance-metadata-options --instance-id {instance['InstanceId']} --http-endpoint enabled"
        )
        return
    tokens, hops = options.get("HttpTokens", "optional"), options.get("HttpPutResponseHopLimit", 1)
    report.notes.append(
        f"metadata: IMDSv2 {'required' if tokens == 'required' else 'optional'}, hop limit {hops}: the "
        "registry runs with host networking, so it reaches the instance role's credentials either way"
    )


def _agent(target: Target, ssm: Any, report: Preflight) -> None:
    if is_managed(ssm, target.instance_id):
        report.notes.append("the SSM agent is already online")
        return
    remedy = (
        "the setup reboots it if it has not registered a short while after the association (AllowReboot=true)"
        if target.allow_reboot
        else "if it has run without an instance profile, its agent backs off for up to a day: restart the "
        "agent (sudo systemctl restart amazon-ssm-agent, or snap.amazon-ssm-agent.amazon-ssm-agent on "
        "Ubuntu), reboot it, redeploy with AllowReboot=true, or enable Default Host Management"
    )
    report.notes.append(f"the SSM agent of {target.instance_id} is not online yet: {remedy}")


def _bucket(target: Target, s3: Any, report: Preflight) -> None:
    try:
        with expected(*BUCKET_MISSING, *BUCKET_FORBIDDEN):
            s3.head_bucket(Bucket=target.bucket)
    except AwsCallFailed as exc:
        if exc.code in BUCKET_FORBIDDEN:
            report.problems.append(
                f"bucket {target.bucket!r} exists but this account cannot use it (owned by another "
                "account?): choose another BucketName"
            )
        else:
            report.notes.append(f"bucket {target.bucket} will be created in {target.region}")
        return
    region = bucket_region(s3, target.bucket)
    if region != target.region:
        report.problems.append(
            f"bucket {target.bucket} is in {region}, the stack in {target.region}: deploy in {region} or "
            "choose another BucketName"
        )
        return
    versioning = s3.get_bucket_versioning(Bucket=target.bucket).get("Status")
    if versioning != "Enabled":
        report.notes.append(
            f"bucket {target.bucket}: versioning is {versioning or 'off'} and will be enabled (only objects "
            "written from then on get versions that a restore can use)"
        )
    key = kms_key_of(encryption_rules(s3, target.bucket))
    if key:
        report.notes.append(
            f"bucket {target.bucket} encrypts with SSE-KMS key {key}: kept; the registry writes without "
            "its own encryption header and its role may use that key"
        )


def _tls_secret(target: Target, sm: Any, report: Preflight) -> None:
    if not target.tls_secret_arn:
        report.notes.append(
            "no TlsSecretArn: a self-signed certificate is generated for the instance's names"
        )
        return
    try:
        with expected("ResourceNotFoundException", "AccessDeniedException"):
            key = secret_kms_key(sm, target.tls_secret_arn)
    except AwsCallFailed as exc:
        report.problems.append(
            f"TLS secret {target.tls_secret_arn} cannot be read here ({exc.code}): give the "
            "ARN of a secret in this account and region"
        )
        return
    if key:
        report.notes.append(
            f"TLS secret is encrypted with KMS key {key}: the setup and the instance get kms:Decrypt on it "
            "through Secrets Manager (a key of another account also needs its key policy to allow them)"
        )


def _image(target: Target, report: Preflight) -> None:
    if not target.image:
        return
    if ecr_repository_arn(target.image, target.partition):
        report.notes.append(f"{target.image}: the instance role gets pull rights on that ECR repository")
    elif not target.image.startswith("public.ecr.aws/"):
        report.notes.append(
            f"{target.image} comes from Docker Hub: anonymous pulls are rate-limited and need internet "
            "egress; public.ecr.aws/docker/library/registry:2 is the default"
        )
