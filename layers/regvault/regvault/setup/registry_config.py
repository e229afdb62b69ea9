"""Render the registry's ``config.yml`` (distribution 2.x / 3.x) for the S3 storage driver.

Used by the SSM launch document on EC2 and by the local harness that runs the real registry binary,
so both run the configuration regvault reasons about. Secret *values* never pass through here: the
config names files (htpasswd, TLS key) that the launch script or harness wrote.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from regvault.errors import InvalidInput
from regvault.storage.layout import normalize_root

MIN_CHUNK_SIZE = 5 * 1024 * 1024  # the s3 driver rejects smaller chunks


@dataclass(frozen=True)
class RegistrySettings:
    bucket: str
    region: str
    root: str = ""
    listen: str = "0.0.0.0:5000"
    # Only for an S3-compatible endpoint (the local emulator). On AWS leave both empty: the
    # instance role supplies credentials and the region picks the endpoint.
    s3_endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    chunk_size: int = 10 * 1024 * 1024
    htpasswd_path: str | None = None
    auth_realm: str = "regvault"
    tls_certificate: str | None = None
    tls_key: str | None = None
    http_secret: str | None = None
    delete_enabled: bool = True
    # distribution #3743/#4569: the in-memory blob-descriptor cache answers for blobs a GC (or an
    # S3-level delete) removed. Off by default; "inmemory" to match registry defaults.
    blob_descriptor_cache: str | None = None
    notifications_url: str | None = None
    # regvault's push journal (JournalFunction): its URL and the header that carries the shared secret
    journal_url: str | None = None
    journal_headers: dict[str, str] | None = None
    log_level: str = "info"
    # server-side encryption header on writes; default: on for AWS, off for an S3-compatible endpoint
    encrypt: bool | None = None

    def __post_init__(self) -> None:
        if not self.bucket:
            raise InvalidInput("registry config needs a bucket")
        if self.chunk_size < MIN_CHUNK_SIZE:
            raise InvalidInput(f"chunk size must be at least {MIN_CHUNK_SIZE} bytes (5 MiB)")
        if bool(self.tls_certificate) != bool(self.tls_key):
            raise InvalidInput("TLS needs both a certificate and a key path")
        if bool(self.access_key) != bool(self.secret_key):
            raise InvalidInput("give both an access key and a secret key, or neither")
        if self.blob_descriptor_cache not in (None, "inmemory", "redis"):
            raise InvalidInput("blob descriptor cache is 'inmemory', 'redis' or none")


def config_dict(s: RegistrySettings) -> dict[str, Any]:
    s3: dict[str, Any] = {
        "region": s.region,
        "bucket": s.bucket,
        "encrypt": (not s.s3_endpoint) if s.encrypt is None else s.encrypt,
        "secure": not (s.s3_endpoint or "").startswith("http://"),
        "v4auth": True,
        "chunksize": s.chunk_size,
    }
    root = normalize_root(s.root)
    if root:
        s3["rootdirectory"] = f"/{root}"
    if s.s3_endpoint:
        s3["regionendpoint"] = s.s3_endpoint
    if s.access_key:
        s3["accesskey"] = s.access_key
        s3["secretkey"] = s.secret_key
    storage: dict[str, Any] = {
        "s3": s3,
        "delete": {"enabled": s.delete_enabled},
        "redirect": {"disable": True},
        "maintenance": {"uploadpurging": {"enabled": False}},
    }
    if s.blob_descriptor_cache:
        storage["cache"] = {"blobdescriptor": s.blob_descriptor_cache}
    http: dict[str, Any] = {"addr": s.listen, "headers": {"X-Content-Type-Options": ["nosniff"]}}
    if s.http_secret:
        http["secret"] = s.http_secret
    if s.tls_certificate:
        http["tls"] = {"certificate": s.tls_certificate, "key": s.tls_key}
    config: dict[str, Any] = {
        "version": "0.1",
        "log": {"level": s.log_level, "accesslog": {"disabled": True}},
        "storage": storage,
        "http": http,
    }
    if s.htpasswd_path:
        config["auth"] = {"htpasswd": {"realm": s.auth_realm, "path": s.htpasswd_path}}
    endpoints: list[dict[str, Any]] = []
    if s.notifications_url:  # the user's own webhook
        own = {"name": "regvault", "url": s.notifications_url, "timeout": "5s", "threshold": 5}
        endpoints.append({**own, "backoff": "10s"})
    if s.journal_url:  # regvault's push journal: neither pulls nor blob uploads are sent
        endpoint: dict[str, Any] = {
            "name": "regvault-journal",
            "url": s.journal_url,
            "timeout": "5s",
            "threshold": 5,
            "backoff": "10s",
            "ignore": {"mediatypes": ["application/octet-stream"], "actions": ["pull"]},
        }
        if s.journal_headers:
            endpoint["headers"] = {name: [value] for name, value in s.journal_headers.items()}
        endpoints.append(endpoint)
    if endpoints:
        config["notifications"] = {"endpoints": endpoints}
    return config


def render(settings: RegistrySettings) -> str:
    """The config as YAML text (block style; scalars JSON-quoted, which YAML reads as-is)."""
    return "".join(_emit(config_dict(settings), 0))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))


def _emit(node: dict[str, Any], indent: int) -> list[str]:
    pad = "  " * indent
    out: list[str] = []
    for key, value in node.items():
        if isinstance(value, dict):
            out.append(f"{pad}{key}:\n")
            out += _emit(value, indent + 1)
        elif isinstance(value, list):
            out.append(f"{pad}{key}:\n")
            for item in value:
                if isinstance(item, dict):
                    lines = _emit(item, indent + 2)
                    first = lines[0].lstrip()
                    out.append(f"{pad}  - {first}")
                    out += lines[1:]
                else:
                    out.append(f"{pad}  - {_scalar(item)}\n")
        else:
            out.append(f"{pad}{key}: {_scalar(value)}\n")
    return out
