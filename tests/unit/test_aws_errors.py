import pytest
from botocore.exceptions import ClientError

from regvault.aws.errors import translate
from regvault.aws.s3 import S3Store
from regvault.errors import (
    AccessDenied,
    BucketNotFound,
    CredentialsMissing,
    ObjectMissing,
    ObjectTooLarge,
    StorageError,
)


def _error(code, status):
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op"
    )


@pytest.mark.parametrize(
    ("code", "status", "key", "kind", "text"),
    [
        ("NoSuchBucket", 404, None, BucketNotFound, "does not exist"),
        ("NoSuchKey", 404, "k", ObjectMissing, "s3://b/k"),
        ("AccessDenied", 403, None, AccessDenied, "access denied for s3:ListObjectVersions"),
        ("InvalidAccessKeyId", 403, None, CredentialsMissing, "rejected the credentials"),
        ("SignatureDoesNotMatch", 400, None, CredentialsMissing, "rejected the credentials"),
        ("SlowDown", 503, None, StorageError, "SlowDown"),
    ],
)
def test_client_errors_become_domain_errors(code, status, key, kind, text):
    err = translate(_error(code, status), "b", "ListObjectVersions", key)
    assert isinstance(err, kind) and text in str(err) and "\n" not in str(err)


def test_missing_version_and_size_guard(s3, bucket):
    store = S3Store(bucket, s3)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x" * 100)
    with pytest.raises(ObjectMissing):
        store.get_bytes("absent")
    with pytest.raises(ObjectTooLarge):
        store.get_bytes("k", max_bytes=10)
    assert store.get_bytes("k", max_bytes=100) == b"x" * 100
    assert store.versioning_status() == "Enabled"


def test_expected_codes_become_aws_call_failed_and_others_go_up_unchanged():
    from regvault.aws.errors import expected
    from regvault.errors import AwsCallFailed

    def fail(code):
        raise _error(code, 400)

    with pytest.raises(AwsCallFailed) as caught, expected("NoSuchEntity", "404"):
        fail("NoSuchEntity")
    assert (caught.value.code, caught.value.message) == ("NoSuchEntity", "m")
    # the Setup state machine retries on the name ClientError: an unexpected code must keep it
    with pytest.raises(ClientError) as other, expected("NoSuchEntity"):
        fail("InvalidParameterValue")
    assert type(other.value).__name__ == "ClientError"
    with pytest.raises(KeyError), expected("NoSuchEntity"):
        raise KeyError("not an AWS error")


class _CutShortClient:
    """GetObject whose first ``cuts`` bodies break mid-stream (as botocore reports it)."""

    class meta:
        endpoint_url = "memory://"

        class events:
            @staticmethod
            def register(*_):
                pass

    def __init__(self, cuts):
        self.cuts = cuts
        self.calls = 0

    def get_object(self, **_):
        from botocore.exceptions import IncompleteReadError

        self.calls += 1
        cut = self.calls <= self.cuts

        class Body:
            def read(self):
                if cut:
                    raise IncompleteReadError(actual_bytes=1, expected_bytes=3)
                return b"abc"

            def iter_chunks(self, _size):
                yield b"a"
                if cut:
                    raise IncompleteReadError(actual_bytes=1, expected_bytes=3)
                yield b"bc"

            def close(self):
                pass

        return {"Body": Body()}


def test_a_body_cut_short_is_read_again_up_to_the_stream_attempts():
    import hashlib

    from regvault.aws.errors import BodyCutShort
    from regvault.aws.s3 import STREAM_ATTEMPTS

    client = _CutShortClient(cuts=STREAM_ATTEMPTS - 1)
    assert S3Store("b", client).get_bytes("k") == b"abc"
    assert client.calls == STREAM_ATTEMPTS
    client = _CutShortClient(cuts=STREAM_ATTEMPTS - 1)
    assert S3Store("b", client).stream_sha256("k") == (hashlib.sha256(b"abc").hexdigest(), 3)
    assert client.calls == STREAM_ATTEMPTS
    for read in (lambda s: s.get_bytes("k"), lambda s: s.stream_sha256("k")):
        client = _CutShortClient(cuts=STREAM_ATTEMPTS)
        with pytest.raises(BodyCutShort, match="cut short"):
            read(S3Store("b", client))
        assert client.calls == STREAM_ATTEMPTS
