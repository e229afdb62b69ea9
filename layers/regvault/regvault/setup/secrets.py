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

from regvault.aws.errors import expected
from regvault.errors import AwsCallFailed, InvalidInput

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
    kms_key: str | None = None  # a customer KMS key the secret is encrypted with


@dataclass
class UserSecrets:
    users_arn: str  # operators only: every user's plaintext password
    htpasswd_arn: str  # the instance: the bcrypt htpasswd file and the health-check credential
    changed: list[str]


def _get(sm: Any, name: str) -> tuple[str, dict[str, Any]] | None:
    try:
        with expected("ResourceNotFoundException"):
            out = sm.get_secret_value(SecretId=name)
    except AwsCallFailed:
        return None
    return str(out["ARN"]), json.loads(out["SecretString"])


def _put(
    sm: Any, name: str, found: tuple[str, dict[str, Any]] | None, value: dict[str, Any], what: str
) -> str:
    if found is None:
        return str(sm.create_secret(Name=name, SecretString=json.dumps(value), Description=what)["ARN"])
    sm.put_secret_value(SecretId=found[0], SecretString=json.dumps(value))
    return found[0]


def _htpasswd_users(text: str) -> set[str]:
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def ensure_user_secrets(sm: Any, stack: str, users: list[str]) -> UserSecrets:
    """Two secrets, so that the instance never reads a plaintext password of a person:

    - ``<stack>/registry-users``: each user's password (operators read it; the stack's output);
    - ``<stack>/registry-htpasswd``: the bcrypt htpasswd file and the health-check user's credential
      (the instance reads it at launch). distribution's htpasswd has no per-user rights, so the
      health-check user can push like any user; only the instance role can read its password, and that
      role can already write the bucket directly, so it grants nothing the instance does not have.

    Existing passwords are kept; users added to the list get one; users removed lose theirs. A users
    secret of the earlier single-secret layout is converged (its htpasswd and health-check entries move).
    """
    users_name, htpasswd_name = f"{stack}/registry-users", f"{stack}/registry-htpasswd"
    found_users, found_htpasswd = _get(sm, users_name), _get(sm, htpasswd_name)
    current = found_users[1] if found_users else {}
    instance = found_htpasswd[1] if found_htpasswd else {}
    passwords: dict[str, str] = dict(current.get("passwords", {}))
    check_password = str(
        instance.get("healthcheck_password") or passwords.get(HEALTHCHECK_USER) or token.token_urlsafe(24)
    )
    passwords.pop(HEALTHCHECK_USER, None)
    changed = []
    for user in users:
        if user not in passwords:
            passwords[user] = token.token_urlsafe(24)
            changed.append(f"password generated for {user}")
    for user in [u for u in passwords if u not in users]:
        del passwords[user]
        changed.append(f"{user} removed")
    users_arn = found_users[0] if found_users else ""
    if found_users is None or current != {"passwords": passwords}:
        users_arn = _put(sm, users_name, found_users, {"passwords": passwords}, "regvault registry users")
        changed.append("users secret written" if found_users is None else "users secret converged")
    everyone = {**passwords, HEALTHCHECK_USER: check_password}
    htpasswd_arn = found_htpasswd[0] if found_htpasswd else ""
    if (
        found_htpasswd is None
        or changed
        or _htpasswd_users(str(instance.get("htpasswd", ""))) != set(everyone)
        or instance.get("healthcheck_user") != HEALTHCHECK_USER
    ):
        value = {
            "htpasswd": htpasswd(everyone),
            "healthcheck_user": HEALTHCHECK_USER,
            "healthcheck_password": check_password,
        }
        htpasswd_arn = _put(sm, htpasswd_name, found_htpasswd, value, "regvault registry htpasswd (instance)")
        changed.append("htpasswd written")
    return UserSecrets(users_arn, htpasswd_arn, changed)


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


def secret_kms_key(sm: Any, secret_id: str) -> str | None:
    """The customer KMS key a secret is encrypted with (None: the AWS managed aws/secretsmanager)."""
    key = sm.describe_secret(SecretId=secret_id).get("KmsKeyId")
    return str(key) if key and "aws/secretsmanager" not in str(key) else None


def check_tls_secret(sm: Any, arn: str) -> SecretResult:
    """A TlsSecretArn given by the user must hold {"certificate": PEM, "key": PEM}. Under a customer
    KMS key, reading it needs kms:Decrypt too (the secrets Lambda's role has it through Secrets
    Manager; the instance's policy gets that key)."""
    found = _get(sm, arn)
    if found is None:
        raise InvalidInput(f"TLS secret {arn} not found")
    if not {"certificate", "key"} <= found[1].keys() or "BEGIN CERTIFICATE" not in str(
        found[1]["certificate"]
    ):
        raise InvalidInput(f'TLS secret {arn} must hold JSON {{"certificate": "<PEM>", "key": "<PEM>"}}')
    return SecretResult(found[0], [], secret_kms_key(sm, found[0]))
