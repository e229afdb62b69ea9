"""The journal endpoint's edge: the registry's notification request (through a Lambda Function URL) in,
an HTTP answer out. Wrong or missing secret: 401; a body over 1 MiB: 413; not the registry's envelope:
400; nothing is written then, and the log gets one line."""

from __future__ import annotations

import base64
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from regvault.errors import InvalidInput
from regvault.journal.record import SECRET_HEADER, JournalEntry, record_batch
from regvault.lambda_edge.events import one_line
from regvault.storage.reference import validate_repository, validate_tag
from regvault.storage.store import ObjectStore

MAX_BODY = 1024 * 1024
MAX_EVENTS = 1000


class _Target(BaseModel):
    model_config = ConfigDict(extra="ignore")

    repository: str
    mediaType: str | None = Field(default=None, max_length=255)
    digest: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
    tag: str | None = None

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        return validate_repository(value)

    @field_validator("tag")
    @classmethod
    def _tag(cls, value: str | None) -> str | None:
        return validate_tag(value) if value else None


class _Named(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(default=None, max_length=256)


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, max_length=128)
    addr: str | None = Field(default=None, max_length=256)


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=128)
    timestamp: datetime
    action: str = Field(pattern=r"^(push|pull|delete|mount)$")
    target: _Target
    request: _Request = _Request()
    actor: _Named = _Named()


class Envelope(BaseModel):
    """``{"events": [...]}`` as distribution's notifications send it."""

    model_config = ConfigDict(extra="ignore")

    events: list[_Event] = Field(max_length=MAX_EVENTS)

    def entries(self) -> list[JournalEntry]:
        return [
            JournalEntry(
                event_id=e.id,
                action=e.action,
                repository=e.target.repository,
                tag=e.target.tag,
                digest=e.target.digest,
                media_type=e.target.mediaType,
                actor=e.actor.name or None,
                at=e.timestamp.isoformat(),
                request_id=e.request.id,
                source_address=e.request.addr,
            )
            for e in self.events
        ]


@dataclass
class Answer:
    status: int
    message: str
    written: str | None = None

    def response(self) -> dict[str, Any]:
        return {"statusCode": self.status, "headers": {"content-type": "text/plain"}, "body": self.message}


def handle_notification(
    event: dict[str, Any], secret: str, sink: ObjectStore, bucket: str, root: str, now: datetime
) -> Answer:
    """One Function URL request: check, parse, keep the pushes and deletes."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "POST"))
    if method != "POST":
        return Answer(405, "POST the registry's notifications here")
    given = headers.get(SECRET_HEADER, "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        return Answer(401, "missing or wrong journal secret")
    raw = event.get("body") or ""
    if len(raw) > MAX_BODY * 4 // 3 + 4:
        return Answer(413, f"body over {MAX_BODY} bytes")
    try:
        body = base64.b64decode(raw, validate=True) if event.get("isBase64Encoded") else str(raw).encode()
    except ValueError:
        return Answer(400, "body is not base64 as isBase64Encoded says")
    if len(body) > MAX_BODY:
        return Answer(413, f"body over {MAX_BODY} bytes")
    try:
        envelope = Envelope.model_validate_json(body)
    except ValidationError as exc:
        return Answer(400, f"not a registry notification envelope: {one_line(exc)}"[:300])
    except InvalidInput as exc:  # a repository or tag name no registry writes
        return Answer(400, f"not a registry notification envelope: {exc}"[:300])
    key = record_batch(sink, bucket, root, envelope.entries(), now)
    return Answer(200, "kept" if key else "nothing to keep (pulls and blob uploads are not journaled)", key)
