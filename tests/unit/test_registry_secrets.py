import json

import bcrypt
import boto3
import pytest
from cryptography import x509
from moto import mock_aws

from regvault.errors import InvalidInput
from regvault.registry_secrets import (
    HEALTHCHECK_USER,
    check_tls_secret,
    ensure_tls_secret,
    ensure_users_secret,
    parse_users,
)


@pytest.fixture
def sm():
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def test_users_secret_holds_bcrypt_htpasswd_and_keeps_passwords(sm):
    first = ensure_users_secret(sm, "regvault/users", ["alice", "ci"])
    assert first.changed[0] == "secret created"
    value = json.loads(sm.get_secret_value(SecretId=first.arn)["SecretString"])
    lines = dict(line.split(":", 1) for line in value["htpasswd"].splitlines())
    assert set(lines) == {"alice", "ci", HEALTHCHECK_USER}
    for user, hashed in lines.items():
        assert hashed.startswith("$2b$") and bcrypt.checkpw(
            value["passwords"][user].encode(), hashed.encode()
        )
    assert value["healthcheck_password"] == value["passwords"][HEALTHCHECK_USER]
    # the result carries the ARN only, never a value
    assert value["passwords"]["alice"] not in repr(first)
    # idempotent; a new user gets a password, the others keep theirs; a removed user is gone
    assert ensure_users_secret(sm, "regvault/users", ["ci", "alice"]).changed == []
    again = ensure_users_secret(sm, "regvault/users", ["alice", "deploy"])
    assert sorted(again.changed) == ["ci removed", "password generated for deploy"]
    after = json.loads(sm.get_secret_value(SecretId=first.arn)["SecretString"])
    assert after["passwords"]["alice"] == value["passwords"]["alice"] and "ci" not in after["passwords"]


@pytest.mark.parametrize("text", ["", " , ", "Alice", "a b", "x" * 40, HEALTHCHECK_USER])
def test_bad_user_lists(text):
    with pytest.raises(InvalidInput):
        parse_users(text)


def test_self_signed_tls_secret_is_generated_once(sm):
    first = ensure_tls_secret(sm, "regvault/tls", ["ip-10-0-0-5.eu-west-1.compute.internal"], ["10.0.0.5"])
    value = json.loads(sm.get_secret_value(SecretId=first.arn)["SecretString"])
    cert = x509.load_pem_x509_certificate(value["certificate"].encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["ip-10-0-0-5.eu-west-1.compute.internal"]
    assert "PRIVATE KEY" in value["key"]
    assert ensure_tls_secret(sm, "regvault/tls", ["other"], []).changed == []
    assert check_tls_secret(sm, first.arn).arn == first.arn


def test_user_supplied_tls_secret_must_hold_a_certificate(sm):
    arn = sm.create_secret(Name="mine", SecretString=json.dumps({"cert": "x"}))["ARN"]
    with pytest.raises(InvalidInput, match="must hold JSON"):
        check_tls_secret(sm, arn)
    with pytest.raises(InvalidInput, match="not found"):
        check_tls_secret(sm, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-AbCdEf")
