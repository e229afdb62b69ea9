"""boto3 clients, all with one retry config: botocore's adaptive mode with bounded attempts.

Every HTTP request an ``S3Store`` sends is counted (retries included, ``RequestCounter``) so reports
can state what a run cost.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ProfileNotFound

from regvault.aws.listing import skip_error_sniffing_for_complete_listings, use_fast_listing_parser
from regvault.errors import CredentialsMissing

MAX_ATTEMPTS = 8


def retry_config(max_attempts: int = MAX_ATTEMPTS, **options: Any) -> Config:
    """The one client config: adaptive retries, ``max_attempts`` attempts per request in all."""
    return Config(retries={"mode": "adaptive", "max_attempts": max_attempts}, **options)


class RequestCounter:
    """Counts HTTP requests per S3 API operation (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_operation: Counter[str] = Counter()

    def __call__(self, event_name: str = "", **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        with self._lock:
            self.by_operation[operation] += 1

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.by_operation.values())


_SESSIONS: dict[str | None, Any] = {}
_SESSIONS_LOCK = threading.Lock()


def _client_from_own_session(profile: str | None, service: str, **kwargs: Any) -> Any:
    """A client from regvault's own session per profile, made under a lock: a boto3 session is not
    safe to create clients from in two threads at once (the emulator runs task handlers on its
    threads), and boto3's default session is also used by whoever else runs in the process."""
    with _SESSIONS_LOCK:
        if profile not in _SESSIONS:
            try:
                _SESSIONS[profile] = boto3.session.Session(profile_name=profile)
            except ProfileNotFound:
                raise CredentialsMissing(
                    f"AWS profile {profile!r} not found: check --profile / AWS_PROFILE and ~/.aws/config"
                ) from None
        return _SESSIONS[profile].client(service, **kwargs)


def client(
    service: str, region: str | None = None, endpoint_url: str | None = None, profile: str | None = None
) -> Any:
    """A boto3 client for setup steps (IAM, EC2, SSM, Secrets Manager, Step Functions), adaptive retries."""
    return _client_from_own_session(
        profile, service, region_name=region, endpoint_url=endpoint_url, config=retry_config()
    )


def s3_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    max_pool_connections: int = 16,
    max_attempts: int = MAX_ATTEMPTS,
) -> Any:
    """A boto3 S3 client with adaptive retries; ``endpoint_url`` for the local emulator."""
    try:
        session = boto3.session.Session(profile_name=profile, region_name=region)
    except ProfileNotFound:
        raise CredentialsMissing(
            f"AWS profile {profile!r} not found: check --profile / AWS_PROFILE and ~/.aws/config"
        ) from None
    use_fast_listing_parser(session)
    config = retry_config(
        max_attempts,
        max_pool_connections=max_pool_connections,
        connect_timeout=5,
        read_timeout=30,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    s3 = session.client("s3", endpoint_url=endpoint_url, config=config)
    skip_error_sniffing_for_complete_listings(s3)
    return s3
