"""Bucket posture: versioning, lifecycle expiry (the recovery window), encryption, public access and
TLS-only policy, judged from what ``RegistryStore.posture`` read."""

from __future__ import annotations

import json
from typing import Any

from regvault.audit.findings import Finding
from regvault.storage.layout import RegistryLayout, is_upload_scratch
from regvault.storage.store import BucketPosture


def posture_findings(posture: BucketPosture, layout: RegistryLayout) -> tuple[list[Finding], int | None]:
    """Bucket-level findings and the recovery window in days (None: versions never expire)."""
    out: list[Finding] = []
    if posture.versioning != "Enabled" and "GetBucketVersioning" not in posture.unreadable:
        state = (posture.versioning or "never enabled").lower()
        out.append(
            Finding(
                "BUCKET_VERSIONING_OFF",
                f"bucket versioning is {state}: a delete or overwrite loses data for good",
            )
        )
    window: int | None = None
    for rule in posture.lifecycle_rules or []:
        if rule.get("Status") != "Enabled" or not _rule_applies(rule, layout.prefix):
            continue
        noncurrent = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
        if isinstance(noncurrent, int):
            window = noncurrent if window is None else min(window, noncurrent)
        expiration = rule.get("Expiration", {})
        if "Days" in expiration or "Date" in expiration:
            out.append(
                Finding(
                    "CURRENT_EXPIRATION",
                    f"lifecycle rule {rule.get('ID', '?')!r} expires current registry objects",
                    key=_rule_prefix(rule),
                )
            )
    if window is not None:
        out.append(
            Finding(
                "NONCURRENT_EXPIRATION",
                f"noncurrent versions expire after {window} days: older images cannot be restored after that",
                recoverable=None,
            )
        )
    if posture.encryption_rules is not None and not posture.encryption_rules:
        out.append(Finding("BUCKET_NOT_ENCRYPTED", "the bucket has no default encryption"))
    pab = posture.public_access_block
    flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    if pab is not None and not all(pab.get(f) for f in flags):
        off = [f for f in flags if not pab.get(f)]
        out.append(Finding("PUBLIC_ACCESS_NOT_BLOCKED", f"public access block is missing: {', '.join(off)}"))
    if "GetBucketPolicy" not in posture.unreadable and not _denies_insecure_transport(posture.policy):
        out.append(
            Finding(
                "INSECURE_TRANSPORT_ALLOWED",
                "no bucket policy statement denies requests with aws:SecureTransport false",
            )
        )
    for operation in posture.unreadable:
        out.append(
            Finding("POSTURE_UNREADABLE", f"access denied for s3:{operation}; that setting was not checked")
        )
    return out, window


def _rule_prefix(rule: dict[str, Any]) -> str:
    filt = rule.get("Filter") or {}
    prefix = filt.get("Prefix")
    if prefix is None and isinstance(filt.get("And"), dict):
        prefix = filt["And"].get("Prefix")
    if prefix is None:
        prefix = rule.get("Prefix", "")
    return str(prefix or "")


def _rule_applies(rule: dict[str, Any], registry_prefix: str) -> bool:
    prefix = _rule_prefix(rule)
    if is_upload_scratch(prefix):
        return False  # upload scratch: expiring it fast is the recommended setup
    return registry_prefix.startswith(prefix) or prefix.startswith(registry_prefix)


def _denies_insecure_transport(policy: str | None) -> bool:
    if not policy:
        return False
    try:
        doc = json.loads(policy)
    except json.JSONDecodeError:
        return False
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Deny":
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("s3:*", "*") for a in actions):
            continue
        cond = st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
        if str(cond).lower() in ("false", "['false']"):
            return True
    return False
