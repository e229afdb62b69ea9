"""Typed edges for the Lambda handlers: events and environment, validated with pydantic.

Only the Lambda functions import this module (pydantic ships in the layer); the CLI does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from regvault.audit.run import AuditRequest
from regvault.errors import InvalidInput
from regvault.restore.targets import RestoreRequest, parse_time
from regvault.storage.digest import Digest
from regvault.storage.layout import normalize_root
from regvault.storage.reference import validate_repository, validate_tag

M = TypeVar("M", bound=BaseModel)


class Settings(BaseModel):
    """Environment of every regvault Lambda, validated at cold start."""

    model_config = ConfigDict(frozen=True)

    bucket: str = Field(min_length=3, max_length=63)
    root: str = ""

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        return normalize_root(value)

    # field -> environment variable; subclasses add theirs
    ENV: ClassVar[dict[str, str]] = {"bucket": "REGVAULT_BUCKET", "root": "REGVAULT_ROOT"}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        # unset optional variables fall back to the field's default; required ones fail validation
        values: dict[str, Any] = {name: env[var] for name, var in cls.ENV.items() if env.get(var)}
        values.setdefault("bucket", "")
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InvalidInput(f"bad Lambda environment: {one_line(exc)}") from None


class AuditSettings(Settings):
    reports_bucket: str = Field(min_length=3, max_length=63)
    alert_topic_arn: str | None = None
    # the distributed audit (AuditStateMachine) and when the scheduled audit hands over to it
    audit_state_machine_arn: str | None = Field(default=None, pattern=r"^arn:[\w-]+:states:")
    distributed_threshold: int = Field(default=5_000_000, ge=0)
    audit_shards: int = 256
    # AutoRepair: the RepairFunction the audit hands a report with recoverable broken images to
    repair_function: str | None = None
    # the report's storage and cost section: the bucket's region (Lambda sets AWS_REGION) for the price
    # table, or a price of one's own
    region: str | None = None
    price_gb_month: float | None = Field(default=None, ge=0, lt=10)
    protected_tags: str = ""  # ProtectedTags: the audit reports those that moved and were not put back
    journal: bool = False  # EnableJournal: the audit reads the push journal from the reports bucket

    @field_validator("audit_shards")
    @classmethod
    def _shards(cls, value: int) -> int:
        if value not in (16, 256):
            raise ValueError("AUDIT_SHARDS must be 16 or 256")
        return value

    def audit_request(self, deep: bool = False, sample: float = 1.0, journal: Any = None) -> AuditRequest:
        return AuditRequest(
            journal=journal,
            deep=deep,
            sample=sample,
            price_region=self.region,
            price_gb_month=self.price_gb_month,
            protected_tags=self.protected_tags,
        )

    ENV: ClassVar[dict[str, str]] = {
        **Settings.ENV,
        "reports_bucket": "REPORTS_BUCKET",
        "alert_topic_arn": "ALERT_TOPIC_ARN",
        "audit_state_machine_arn": "AUDIT_STATE_MACHINE_ARN",
        "distributed_threshold": "DISTRIBUTED_AUDIT_THRESHOLD",
        "audit_shards": "AUDIT_SHARDS",
        "repair_function": "REPAIR_FUNCTION",
        "region": "AWS_REGION",
        "price_gb_month": "REGVAULT_S3_PRICE_GB_MONTH",
        "protected_tags": "REGVAULT_PROTECTED_TAGS",
        "journal": "REGVAULT_JOURNAL",
    }


# Keys of an EventBridge / EventBridge Scheduler envelope; the audit takes its options from the
# top level (direct invocation, Scheduler input) or from "detail".
_ENVELOPE = {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}


class AuditEvent(BaseModel):
    """``{"deep": bool, "sample": float}``, a Scheduler event, or ``{}`` (a plain audit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deep: StrictBool = False
    sample: float = Field(default=1.0, gt=0.0, le=1.0)

    @classmethod
    def from_event(cls, event: object) -> AuditEvent:
        if isinstance(event, dict) and event.keys() & {"source", "detail-type"}:
            detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
            options = {k: v for k, v in event.items() if k not in _ENVELOPE}
            return parse_event(cls, {**options, **(detail or {})})
        return parse_event(cls, event)


class AuditOptionsEvent(BaseModel):
    """The options a distributed audit carries from its input to its reduce step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    deep: StrictBool = False
    sample: float = Field(default=1.0, gt=0.0, le=1.0)


_RUN_ID = r"^[A-Za-z0-9_-]{1,80}$"


class AuditPlanEvent(BaseModel):
    """The AuditStateMachine's first state: ``{"step": "plan", "run": <execution name>, "options": {..}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = Field(pattern="^plan$")
    run: str = Field(pattern=_RUN_ID)
    options: AuditOptionsEvent = AuditOptionsEvent()


class AuditShardEvent(BaseModel):
    """One item of the Distributed Map: ``{"step": "shard", "run": .., "item": {shard, after, through}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = Field(pattern="^shard$")
    run: str = Field(pattern=_RUN_ID)
    item: dict[str, Any]


class AuditReduceEvent(BaseModel):
    """The last state: the plan's run, shard count, start time and options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: str = Field(pattern="^reduce$")
    run: str = Field(pattern=_RUN_ID)
    shards: int = Field(ge=1, le=4096)
    started_at: str = Field(min_length=1, max_length=40)
    options: AuditOptionsEvent = AuditOptionsEvent()


class GcSettings(Settings):
    reports_bucket: str = Field(min_length=3, max_length=63)
    alert_topic_arn: str | None = None
    mode: str = Field(default="plan", pattern="^(plan|apply)$")  # what a scheduled run does
    delete_untagged: StrictBool = False

    ENV: ClassVar[dict[str, str]] = {
        **Settings.ENV,
        "reports_bucket": "REPORTS_BUCKET",
        "alert_topic_arn": "ALERT_TOPIC_ARN",
        "mode": "GC_MODE",
        "delete_untagged": "GC_DELETE_UNTAGGED",
    }


class GcEvent(BaseModel):
    """``{"apply": bool, "delete_untagged": bool, "grace_hours": number}`` or ``{"undo": run id,
    "apply": bool}``; a Scheduler event runs what GC_MODE / GC_DELETE_UNTAGGED say."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    apply: StrictBool | None = None
    delete_untagged: StrictBool | None = None
    grace_hours: float = Field(default=2.0, ge=0.0, le=24 * 365)
    undo: str | None = Field(default=None, pattern=r"^gc-\d{8}T\d{6}Z-[0-9a-f]{6}$")

    @classmethod
    def from_event(cls, event: object) -> GcEvent:
        if isinstance(event, dict) and event.keys() & {"source", "detail-type"}:
            detail = event.get("detail") if isinstance(event.get("detail"), dict) else {}
            options = {k: v for k, v in event.items() if k not in _ENVELOPE}
            return parse_event(cls, {**options, **(detail or {})})
        return parse_event(cls, event)


class RestoreSettings(Settings):
    alert_topic_arn: str | None = None
    restart_instance_id: str | None = Field(default=None, pattern=r"^i-[0-9a-f]{8,17}$")

    ENV: ClassVar[dict[str, str]] = {
        **Settings.ENV,
        "alert_topic_arn": "ALERT_TOPIC_ARN",
        "restart_instance_id": "RESTART_REGISTRY_INSTANCE_ID",
    }


class RepairSettings(RestoreSettings):
    """RepairFunction: the restore role's environment, and the stack's ProtectedTags."""

    protected_tags: str = ""

    ENV: ClassVar[dict[str, str]] = {**RestoreSettings.ENV, "protected_tags": "REGVAULT_PROTECTED_TAGS"}


class RepairEvent(BaseModel):
    """``{"heal": true}`` from the scheduled audit (AutoRepair: repair, audit again, notify before and
    after), or ``{"repository", "tag", "include_deleted", "apply"}`` on demand (a plan by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    heal: StrictBool = False
    repository: str | None = None
    tag: str | None = None
    include_deleted: StrictBool = False
    apply: StrictBool = False
    reason: str | None = Field(default=None, max_length=200)

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else validate_repository(value)

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        return None if value is None else validate_tag(value)


class GuardSettings(Settings):
    protected_tags: str = ""
    alert_topic_arn: str | None = None
    reports_bucket: str | None = None  # the push journal's bucket: who moved a tag

    @field_validator("protected_tags")
    @classmethod
    def _patterns(cls, value: str) -> str:
        from regvault.guard.patterns import Protection

        return str(Protection.parse(value))

    ENV: ClassVar[dict[str, str]] = {
        **Settings.ENV,
        "protected_tags": "REGVAULT_PROTECTED_TAGS",
        "alert_topic_arn": "ALERT_TOPIC_ARN",
        "reports_bucket": "REPORTS_BUCKET",
    }


class JournalSettings(Settings):
    reports_bucket: str = Field(min_length=3, max_length=63)
    journal_secret_arn: str = Field(min_length=1)

    ENV: ClassVar[dict[str, str]] = {
        **Settings.ENV,
        "reports_bucket": "REPORTS_BUCKET",
        "journal_secret_arn": "JOURNAL_SECRET_ARN",
    }


class _S3Bucket(BaseModel):
    name: str = Field(min_length=3, max_length=63)


class _S3Object(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    key: str = Field(min_length=1, max_length=1024)
    version_id: str | None = Field(default=None, alias="version-id", max_length=1024)


class _S3Detail(BaseModel):
    bucket: _S3Bucket
    object: _S3Object


class S3ObjectEvent(BaseModel):
    """The standard EventBridge S3 event: ``detail-type`` "Object Created" / "Object Deleted",
    ``detail.bucket.name``, ``detail.object.key`` and ``detail.object.version-id``."""

    model_config = ConfigDict(populate_by_name=True)

    source: str = Field(pattern=r"^aws\.s3$")
    detail_type: str = Field(alias="detail-type", pattern=r"^Object (Created|Deleted)$")
    detail: _S3Detail


class RestoreEvent(BaseModel):
    """``{"repository", "tag", "to" | "previous" | "at", "apply": false}``; without ``tag``, ``at``
    restores every tag of the repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: str
    tag: str | None = None
    to: str | None = None
    previous: int | None = Field(default=None, ge=1, le=1000)
    at: str | None = None
    apply: StrictBool = False

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        return None if value is None else validate_tag(value)

    @field_validator("to")
    @classmethod
    def _to(cls, value: str | None) -> str | None:
        if value is not None:
            Digest.parse(value)
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time(value)
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RestoreEvent:
        """The combination rules are the CLI's and the planner's: ``RestoreRequest`` owns them."""
        try:
            RestoreRequest.parse(self.repository, self.tag, to=self.to, previous=self.previous, at=self.at)
        except InvalidInput as exc:
            raise ValueError(str(exc).replace("--", "")) from None
        return self


class CatalogEvent(BaseModel):
    """``{"repository": "team/app"}`` or ``{}`` for every repository."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: str | None = None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        return None if value is None else validate_repository(value)


def one_line(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(x) for x in error["loc"]) or "event"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_event(model: type[M], event: object) -> M:
    """Validate a Lambda event; bad events become one-line InvalidInput errors."""
    if not isinstance(event, dict):
        raise InvalidInput(f"event must be a JSON object, got {type(event).__name__}")
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        raise InvalidInput(f"invalid event: {one_line(exc)}") from None
