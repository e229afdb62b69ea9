"""The registry's secrets in Secrets Manager: htpasswd users (bcrypt) and the TLS certificate.

Values are generated here and written to Secrets Manager only; callers get ARNs back, never values,
so nothing secret reaches a step output, a log line or an SSM parameter.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import secrets as token
from dataclasses import dataclass
from typing import Any

from .aws import ClientError, error_code
from .errors import InvalidInput

USER = re.compile(r"[a-z][a-z0-9_.-]{0,31}")
HEALTHCHECK_USER = "regvault-healthcheck"


def parse_users(text: str) -> list[str]:
    users = [u.strip() for u in text.split(",") if u.strip()]
    if not users:
        raise InvalidInput("RegistryUsers needs at least one user name")
    for user in users:
        if not USER.fullmatch(user) or user == HEALTHCHECK_USER:
            raise InvalidInput(
                f"invalid registry user {user[:40]!r}: lowercase letters, digits, '.', '_', '-'"
            )
    return sorted(set(users))


def htpasswd(passwords: dict[str, str]) -> str:
    import bcrypt

    return "".join(
        f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}\n"
        for user, password in sorted(passwords.items())
    )


@dataclass
class SecretResult:
    arn: str
    changed: list[str]


def _get(sm: Any, name: str) -> tuple[str, dict[str, Any]] | None:
    try:
        out = sm.get_secret_value(SecretId=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    return str(out["ARN"]), json.loads(out["SecretString"])


def ensure_users_secret(sm: Any, name: str, users: list[str]) -> SecretResult:
    """One secret: each user's password, the bcrypt htpasswd file, and a health-check user.

    Existing passwords are kept; users added to the list get one; users removed lose theirs.
    """
    found = _get(sm, name)
    current = found[1] if found else {}
    passwords: dict[str, str] = dict(current.get("passwords", {}))
    changed = []
    for user in users:
        if user not in passwords:
            passwords[user] = token.token_urlsafe(24)
            changed.append(f"password generated for {user}")
    for user in [u for u in passwords if u not in users and u != HEALTHCHECK_USER]:
        del passwords[user]
        changed.append(f"{user} removed")
    if HEALTHCHECK_USER not in passwords:
        passwords[HEALTHCHECK_USER] = token.token_urlsafe(24)
    value = {
        "passwords": passwords,
        "healthcheck_user": HEALTHCHECK_USER,
        "healthcheck_password": passwords[HEALTHCHECK_USER],
    }
    if found and not changed and current.get("htpasswd"):
        return SecretResult(found[0], [])
    value["htpasswd"] = htpasswd(passwords)
    if found is None:
        arn = sm.create_secret(
            Name=name, SecretString=json.dumps(value), Description="regvault registry users"
        )["ARN"]
        return SecretResult(str(arn), ["secret created", *changed])
    sm.put_secret_value(SecretId=found[0], SecretString=json.dumps(value))
    return SecretResult(found[0], changed or ["htpasswd regenerated"])


def self_signed(hostnames: list[str], addresses: list[str], days: int = 825) -> tuple[str, str]:
    """(certificate PEM, key PEM) for a test setup without a TlsSecretArn."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    common = (hostnames or addresses or ["regvault-registry"])[0]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common[:64])])
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    # its own CA, so that clients can trust exactly this certificate (docker's certs.d, skopeo --cert-dir)
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return (
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def ensure_tls_secret(sm: Any, name: str, hostnames: list[str], addresses: list[str]) -> SecretResult:
    """A self-signed certificate for the instance's names, generated once and kept."""
    found = _get(sm, name)
    if found is not None and {"certificate", "key"} <= found[1].keys():
        return SecretResult(found[0], [])
    certificate, key = self_signed(hostnames, addresses)
    value = json.dumps({"certificate": certificate, "key": key})
    if found is None:
        arn = sm.create_secret(
            Name=name, SecretString=value, Description="regvault registry TLS (self-signed)"
        )["ARN"]
    else:
        arn = found[0]
        sm.put_secret_value(SecretId=arn, SecretString=value)
    return SecretResult(str(arn), ["self-signed certificate generated"])


def check_tls_secret(sm: Any, arn: str) -> SecretResult:
    """A TlsSecretArn given by the user must hold {"certificate": PEM, "key": PEM}."""
    found = _get(sm, arn)
    if found is None:
        raise InvalidInput(f"TLS secret {arn} not found")
    if not {"certificate", "key"} <= found[1].keys() or "BEGIN CERTIFICATE" not in str(
        found[1]["certificate"]
    ):
        raise InvalidInput(f'TLS secret {arn} must hold JSON {{"certificate": "<PEM>", "key": "<PEM>"}}')
    return SecretResult(found[0], [])
