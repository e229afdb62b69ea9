import json

import bcrypt
import boto3
import pytest
from cryptography import x509
from moto import mock_aws

from regvault.errors import InvalidInput
from regvault.setup.secrets import (
    HEALTHCHECK_USER,
    check_tls_secret,
    ensure_tls_secret,
    ensure_user_secrets,
    parse_users,
)


@pytest.fixture
def sm():
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="eu-west-1")


def read(sm, arn):
    return json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])


def test_plaintext_passwords_and_the_instance_htpasswd_live_in_separate_secrets(sm):
    first = ensure_user_secrets(sm, "regvault", ["alice", "ci"])
    assert "users secret written" in first.changed and "htpasswd written" in first.changed
    users, instance = read(sm, first.users_arn), read(sm, first.htpasswd_arn)
    assert first.users_arn != first.htpasswd_arn and "regvault/registry-users" in first.users_arn
    # operators' secret: the people's passwords and nothing else
    assert users == {"passwords": {"alice": users["passwords"]["alice"], "ci": users["passwords"]["ci"]}}
    # the instance's secret: bcrypt lines for all and the health-check credential, no plaintext of a person
    lines = dict(line.split(":", 1) for line in instance["htpasswd"].splitlines())
    assert set(lines) == {"alice", "ci", HEALTHCHECK_USER}
    everyone = {**users["passwords"], HEALTHCHECK_USER: instance["healthcheck_password"]}
    for user, hashed in lines.items():
        assert hashed.startswith("$2b$") and bcrypt.checkpw(everyone[user].encode(), hashed.encode())
    for password in users["passwords"].values():
        assert password not in json.dumps(instance)
    assert instance["healthcheck_user"] == HEALTHCHECK_USER
    # the result carries ARNs only, never a value
    assert users["passwords"]["alice"] not in repr(first)
    # idempotent; a new user gets a password, the others keep theirs; a removed user is gone
    assert ensure_user_secrets(sm, "regvault", ["ci", "alice"]).changed == []
    again = ensure_user_secrets(sm, "regvault", ["alice", "deploy"])
    assert {"ci removed", "password generated for deploy", "htpasswd written"} <= set(again.changed)
    after, instance_after = read(sm, first.users_arn), read(sm, first.htpasswd_arn)
    assert after["passwords"]["alice"] == users["passwords"]["alice"] and "ci" not in after["passwords"]
    assert set(dict(x.split(":", 1) for x in instance_after["htpasswd"].splitlines())) == {
        "alice",
        "deploy",
        HEALTHCHECK_USER,
    }
    assert instance_after["healthcheck_password"] == instance["healthcheck_password"]


def test_a_users_secret_of_the_single_secret_layout_is_split(sm):
    # Given the earlier layout: one secret the instance read, with htpasswd and health-check entries
    old = {
        "passwords": {"alice": "alice-pw", HEALTHCHECK_USER: "check-pw"},
        "htpasswd": "alice:$2b$10$x\n",
        "healthcheck_user": HEALTHCHECK_USER,
        "healthcheck_password": "check-pw",
    }
    sm.create_secret(Name="regvault/registry-users", SecretString=json.dumps(old))
    result = ensure_user_secrets(sm, "regvault", ["alice"])
    assert read(sm, result.users_arn) == {"passwords": {"alice": "alice-pw"}}
    instance = read(sm, result.htpasswd_arn)
    assert instance["healthcheck_password"] == "check-pw"
    assert "alice-pw" not in json.dumps(instance) and bcrypt.checkpw(
        b"alice-pw", dict(x.split(":", 1) for x in instance["htpasswd"].splitlines())["alice"].encode()
    )


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


def test_user_supplied_tls_secret_under_a_customer_key_reports_the_key(sm):
    key = boto3.client("kms", region_name="eu-west-1").create_key()["KeyMetadata"]["Arn"]
    first = ensure_tls_secret(sm, "regvault/tls", ["localhost"], ["127.0.0.1"])
    assert check_tls_secret(sm, first.arn).kms_key is None  # aws/secretsmanager: nothing to grant
    value = sm.get_secret_value(SecretId=first.arn)["SecretString"]
    theirs = sm.create_secret(Name="theirs", SecretString=value, KmsKeyId=key)["ARN"]
    assert check_tls_secret(sm, theirs).kms_key == key


def test_user_supplied_tls_secret_must_hold_a_certificate(sm):
    arn = sm.create_secret(Name="mine", SecretString=json.dumps({"cert": "x"}))["ARN"]
    with pytest.raises(InvalidInput, match="must hold JSON"):
        check_tls_secret(sm, arn)
    with pytest.raises(InvalidInput, match="not found"):
        check_tls_secret(sm, "arn:aws:secretsmanager:eu-west-1:123456789012:secret:nope-AbCdEf")
