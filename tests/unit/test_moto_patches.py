"""Each emulator fidelity fix (harness.moto_patches) proven on its own."""

import json
import random
import tracemalloc

import pytest
from moto.s3 import models as s3_models

from harness import moto_patches

from .builders import random_history

ORIGINAL_LIST_OBJECTS = s3_models.S3Backend.list_objects
ORIGINAL_LIST_VERSIONS = s3_models.S3Backend.list_object_versions
ORIGINAL_LIST_OBJECTS_V2 = s3_models.S3Backend.list_objects_v2

# moto as it ships: each test puts the patched listing in place itself
pytestmark = pytest.mark.usefixtures("stock_moto_listing")


def _track_names(monkeypatch):
    from moto.s3.utils import _VersionedKeyStore

    for name, method in moto_patches.tracked_methods(_VersionedKeyStore).items():
        monkeypatch.setattr(_VersionedKeyStore, name, method)


@pytest.fixture
def patched(monkeypatch):
    _track_names(monkeypatch)
    monkeypatch.setattr(s3_models.S3Backend, "list_objects", moto_patches.list_objects)
    monkeypatch.setattr(s3_models.S3Backend, "list_objects_v2", moto_patches.list_objects_v2)
    monkeypatch.setattr(s3_models.S3Backend, "list_object_versions", moto_patches.list_object_versions)


def _folders(s3, bucket, prefix):
    out = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
    v1 = s3.list_objects(Bucket=bucket, Prefix=prefix, Delimiter="/")
    assert [p["Prefix"] for p in v1.get("CommonPrefixes", [])] == [
        p["Prefix"] for p in out.get("CommonPrefixes", [])
    ]
    return [p["Prefix"] for p in out.get("CommonPrefixes", [])]


def _tags_bucket(s3, bucket):
    tags = "docker/registry/v2/repositories/app/_manifests/tags/"
    for tag in ("v1", "v2"):
        s3.put_object(Bucket=bucket, Key=f"{tags}{tag}/current/link", Body=b"x")
        s3.put_object(Bucket=bucket, Key=f"{tags}{tag}/index/sha256/ab/link", Body=b"x")
    # the registry deletes a tag: delete markers on every key below it
    s3.delete_object(Bucket=bucket, Key=f"{tags}v2/current/link")
    s3.delete_object(Bucket=bucket, Key=f"{tags}v2/index/sha256/ab/link")
    return tags


def test_fix1_unpatched_moto_lists_folders_of_deleted_keys(s3, bucket):
    # Given the stock moto: the deleted tag is still listed (why the fix exists)
    tags = _tags_bucket(s3, bucket)
    assert _folders(s3, bucket, tags) == [f"{tags}v1/", f"{tags}v2/"]


def test_fix1_delimiter_listing_hides_all_delete_marked_folders(s3, bucket, patched):
    tags = _tags_bucket(s3, bucket)
    assert _folders(s3, bucket, tags) == [f"{tags}v1/"]
    # a folder with one live key left is still listed
    s3.put_object(Bucket=bucket, Key=f"{tags}v2/current/link", Body=b"y")
    assert _folders(s3, bucket, tags) == [f"{tags}v1/", f"{tags}v2/"]
    # plain listings still hide delete-marked keys and keep pagination
    s3.delete_object(Bucket=bucket, Key=f"{tags}v1/current/link")
    keys = [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, PaginationConfig={"PageSize": 1})
        for o in p.get("Contents", [])
    ]
    assert keys == [f"{tags}v1/index/sha256/ab/link", f"{tags}v2/current/link"]


def _random_history(s3, bucket, seed):
    rng = random.Random(seed)
    names = [f"k/{c}{i}" for c in "abc" for i in range(rng.randint(1, 4))]
    random_history(s3, bucket, names, 60, rng, deletes=0.25)


def _all_versions(s3, bucket, page_size, prefix=""):
    seen, requests = [], 0
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix, PaginationConfig={"PageSize": page_size}):
        requests += 1
        for kind in ("Versions", "DeleteMarkers"):
            for v in page.get(kind, []):
                seen.append((v["Key"], v["VersionId"], kind, v["IsLatest"]))
    return seen, requests


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("page_size", [1, 2, 3, 7, 1000])
def test_fix2_same_versions_as_moto_for_every_page_size(s3, bucket, monkeypatch, seed, page_size):
    # Given a random history of puts and deletes
    _random_history(s3, bucket, seed)
    original, _ = _all_versions(s3, bucket, 1000)
    # When the patched listing pages through it
    _track_names(monkeypatch)
    monkeypatch.setattr(s3_models.S3Backend, "list_object_versions", moto_patches.list_object_versions)
    patched, requests = _all_versions(s3, bucket, page_size)
    # Then every version comes exactly once, and the same set as moto's own listing
    assert len(patched) == len(set(patched))
    assert {v[:3] for v in patched} == {v[:3] for v in original}
    assert requests == max(1, -(-len(patched) // page_size))
    # and IsLatest is the version a GET sees
    for key, version_id, kind, latest in patched:
        if latest and kind == "Versions":
            assert s3.head_object(Bucket=bucket, Key=key)["VersionId"] == version_id


def test_fix2_versions_of_a_key_come_newest_first(s3, bucket, patched):
    for body in (b"1", b"2", b"3"):
        s3.put_object(Bucket=bucket, Key="k", Body=body)
    ids = [
        s3.get_object(Bucket=bucket, Key="k", VersionId=v["VersionId"])["Body"].read()
        for v in s3.list_object_versions(Bucket=bucket)["Versions"]
    ]
    assert ids == [b"3", b"2", b"1"]


@pytest.mark.parametrize(
    ("marker", "after"),
    [("p/b", ["p/b/1", "p/b/2", "p/c"]), ("p/b/", ["p/b/1", "p/b/2", "p/c"]), ("p/b/15", ["p/b/2", "p/c"])],
)
def test_fix2_key_marker_is_exclusive_also_when_it_is_not_a_key(s3, bucket, patched, marker, after):
    # stock moto 5 lists ["p/b/2", "p/c"] after "p/b/": it skips the first key past a marker that is not one
    for key in ("p/a/1", "p/b", "p/b/1", "p/b/2", "p/c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b".")
    out = s3.list_object_versions(Bucket=bucket, Prefix="p/", KeyMarker=marker)
    assert [v["Key"] for v in out["Versions"]] == after


def test_fix2_prefix_and_delimiter(s3, bucket, patched):
    for key in ("a/1", "a/2", "b/x/1", "b/y", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b".")
    out = s3.list_object_versions(Bucket=bucket, Prefix="b/", Delimiter="/")
    assert [v["Key"] for v in out["Versions"]] == ["b/y"]
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["b/x/"]
    out = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in out["CommonPrefixes"]] == ["a/", "b/"]
    assert [v["Key"] for v in out["Versions"]] == ["c"]


def test_fix2_listing_copies_no_object_bodies(s3, bucket):
    # Given 24 versions of 1 MiB each
    for i in range(12):
        for _ in range(2):
            s3.put_object(Bucket=bucket, Key=f"big/{i}", Body=random.randbytes(1024 * 1024))
    backend = s3_models.s3_backends["123456789012"]["global"]

    def peak(fn):
        tracemalloc.start()
        fn(backend, bucket, max_keys=1000)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    # Then stock moto copies every body (tens of MiB) and the patched listing copies none
    assert peak(ORIGINAL_LIST_VERSIONS) > 20 * 1024 * 1024
    assert peak(moto_patches.list_object_versions) < 1024 * 1024
    # and the keys stay readable afterwards (no buffer was closed by a copy being collected)
    import gc

    gc.collect()
    assert len(s3.get_object(Bucket=bucket, Key="big/3")["Body"].read()) == 1024 * 1024


# --- fix 3: listing cost --------------------------------------------------------------------------


def _nested_history(s3, bucket, seed):
    rng = random.Random(seed)
    names = [
        f"r/{a}/{b}/{c}"
        for a in ("x", "y", "y-z")
        for b in ("_layers", "_m", "t.1")
        for c in ("1", "2", "3/link")
    ] + ["r/top", "r/x", "s/other"]
    random_history(s3, bucket, names, 120, rng)


def _v2_pages(s3, bucket, **kwargs):
    pages, out = 0, []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kwargs):
        pages += 1
        out += [("key", o["Key"]) for o in page.get("Contents", [])]
        out += [("folder", p["Prefix"]) for p in page.get("CommonPrefixes", [])]
    return out, pages


QUERIES = [
    {},
    {"Prefix": "r/"},
    {"Prefix": "r/y"},
    {"Delimiter": "/"},
    {"Prefix": "r/", "Delimiter": "/"},
    {"Prefix": "r/y/", "Delimiter": "/"},
    {"Prefix": "r/", "StartAfter": "r/x/t.1"},
]


@pytest.mark.parametrize("seed", range(3))
def test_fix3_same_listing_as_moto_for_every_page_size(s3, bucket, monkeypatch, seed):
    # Given a random history of nested keys, some delete-marked
    _nested_history(s3, bucket, seed)
    monkeypatch.setattr(s3_models.S3Backend, "list_objects", moto_patches.list_objects)
    _track_names(monkeypatch)
    for query in QUERIES:
        for page_size in (1, 2, 5, 1000):
            # the reference: moto's own ListObjectsV2 over fix 1's list_objects
            monkeypatch.setattr(s3_models.S3Backend, "list_objects_v2", ORIGINAL_LIST_OBJECTS_V2)
            expected = _v2_pages(s3, bucket, PaginationConfig={"PageSize": page_size}, **query)
            # When the cached, marker-seeking listing pages through it
            monkeypatch.setattr(s3_models.S3Backend, "list_objects_v2", moto_patches.list_objects_v2)
            got = _v2_pages(s3, bucket, PaginationConfig={"PageSize": page_size}, **query)
            # Then the same entries in the same pages
            assert got == expected, (query, page_size)
            assert got[0], query


def test_fix3_cached_names_follow_new_and_removed_keys(s3, bucket, patched):
    s3.put_object(Bucket=bucket, Key="a/1", Body=b".")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/1"]
    # a new name appears at once in every listing
    s3.put_object(Bucket=bucket, Key="a/0", Body=b".")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a/0", "a/1"]
    assert [v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == ["a/0", "a/1"]
    # a name whose every version is removed goes
    version = s3.list_object_versions(Bucket=bucket, Prefix="a/0")["Versions"][0]["VersionId"]
    s3.delete_object(Bucket=bucket, Key="a/0", VersionId=version)
    assert [v["Key"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == ["a/1"]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == ["a/1"]


# --- fix 4: ListObjectVersions written directly -------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_fix4_page_is_byte_for_byte_what_moto_serializes(s3, bucket, monkeypatch, seed):
    from moto.s3.responses import S3Response

    # Given keys that need escaping, several versions, delete markers and folders
    rng = random.Random(seed)
    random_history(s3, bucket, ["a/b&<1>", 'q"uote', "a/c/d", "z", "a/ü", "dir/x/y"], 40, rng)
    bodies = {}
    s3.meta.events.register(
        "after-call.s3.ListObjectVersions",
        lambda http_response, **_: bodies.__setitem__("last", http_response.content),
    )
    queries = [
        {},
        {"MaxKeys": 3},
        {"Delimiter": "/"},
        {"Prefix": "a/", "Delimiter": "/"},
        {"KeyMarker": "a/c/d"},
    ]
    for query in queries:
        s3.list_object_versions(Bucket=bucket, **query)
        expected = bodies["last"]
        monkeypatch.setattr(
            S3Response,
            "list_object_versions",
            moto_patches.fast_list_object_versions(S3Response.list_object_versions),
        )
        s3.list_object_versions(Bucket=bucket, **query)
        monkeypatch.undo()
        # Then the same bytes, and botocore reads them
        assert bodies["last"] == expected, query
    assert b"<DeleteMarker>" in expected or b"<Version>" in expected


def test_the_bucket_notification_answer_says_event_bridge_is_on(s3):
    s3.create_bucket(Bucket="notified")
    assert "EventBridgeConfiguration" not in s3.get_bucket_notification_configuration(Bucket="notified")
    s3.put_bucket_notification_configuration(
        Bucket="notified", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    assert s3.get_bucket_notification_configuration(Bucket="notified")["EventBridgeConfiguration"] == {}


# Fix 6: aws:SecureTransport in bucket policies

TLS_ONLY = {
    "Sid": "TlsOnly",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::reg", "arn:aws:s3:::reg/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
READ_ALL = {
    "Sid": "ReadAll",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::reg/*",
}


def _statement(condition):
    return {"Effect": "Deny", "Action": "s3:*", "Resource": "*", "Condition": condition}


@pytest.mark.parametrize(
    "expected, actual, applies",
    [
        ("false", "false", True),
        ("false", "true", False),
        ("true", "true", True),
        ("true", "false", False),
        ("False", "false", True),  # values compare case-insensitively
        (False, "false", True),  # a JSON boolean
        (True, "false", False),
        (["false"], "false", True),  # a list of values: any of them
        (["true", "false"], "true", True),
        (["true", "false"], "false", True),
        (["true"], "false", False),
    ],
)
def test_fix6_statement_kept_only_when_its_secure_transport_condition_holds(expected, actual, applies):
    statement = _statement({"Bool": {"aws:SecureTransport": expected}})

    assert moto_patches._transport_applies(statement, actual) is applies
    # the condition is decided: moto, which knows no Bool operator, never sees it
    assert "Condition" not in statement


def test_fix6_other_conditions_are_left_to_moto():
    # Given SecureTransport next to another Bool key and another operator
    statement = _statement(
        {
            "Bool": {"aws:SecureTransport": "false", "aws:MultiFactorAuthPresent": "true"},
            "StringEquals": {"aws:PrincipalAccount": "123456789012"},
        }
    )

    # When it is decided for a plain HTTP request
    assert moto_patches._transport_applies(statement, "false") is True

    # Then only the SecureTransport key is gone
    assert statement["Condition"] == {
        "Bool": {"aws:MultiFactorAuthPresent": "true"},
        "StringEquals": {"aws:PrincipalAccount": "123456789012"},
    }


@pytest.mark.parametrize(
    "statement",
    [
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
        _statement({}),
        _statement({"StringEquals": {"aws:PrincipalAccount": "123456789012"}}),
        _statement({"Bool": {"aws:MultiFactorAuthPresent": "true"}}),
    ],
)
def test_fix6_statements_without_the_condition_always_apply_untouched(statement):
    before = json.loads(json.dumps(statement))

    assert moto_patches._transport_applies(statement, "true") is True
    assert moto_patches._transport_applies(statement, "false") is True
    assert statement == before


@pytest.fixture
def secure_transport(monkeypatch):
    """Fix 6 applied for this test only: the classes it assigns to are put back afterwards."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    monkeypatch.setattr(s3_models.FakeBucket, "get_permission", s3_models.FakeBucket.get_permission)
    monkeypatch.setattr(DomainDispatcherApplication, "__call__", DomainDispatcherApplication.__call__)
    moto_patches._TRANSPORT.secure = None
    moto_patches.secure_transport_condition()
    yield moto_patches._TRANSPORT
    moto_patches._TRANSPORT.secure = None


def _tls_only_bucket(s3, *statements):
    from moto.core import DEFAULT_ACCOUNT_ID

    s3.create_bucket(Bucket="reg")
    s3.put_object(Bucket="reg", Key="k", Body=b"hello", ACL="public-read")
    policy = {"Version": "2012-10-17", "Statement": list(statements)}
    s3.put_bucket_policy(Bucket="reg", Policy=json.dumps(policy))
    return s3_models.s3_backends[DEFAULT_ACCOUNT_ID]["global"].get_bucket("reg")


def test_fix6_unpatched_moto_denies_https_too(s3):
    # Given the stock moto: the TLS-only statement denies every request (why the fix exists)
    from moto.iam.access_control import PermissionResult

    bucket = _tls_only_bucket(s3, TLS_ONLY, READ_ALL)
    assert bucket.get_permission("s3:GetObject", "arn:aws:s3:::reg/k") == PermissionResult.DENIED


def test_fix6_bucket_policy_is_decided_by_the_requests_transport(s3, secure_transport):
    from moto.iam.access_control import PermissionResult

    # Given a bucket with the TLS-only policy and a public read
    bucket = _tls_only_bucket(s3, TLS_ONLY, READ_ALL)
    stored = bucket.policy
    resource = "arn:aws:s3:::reg/k"

    # Then plain HTTP is denied, HTTPS allowed
    secure_transport.secure = False
    assert bucket.get_permission("s3:GetObject", resource) == PermissionResult.DENIED
    secure_transport.secure = True
    assert bucket.get_permission("s3:GetObject", resource) == PermissionResult.PERMITTED
    assert bucket.get_permission("s3:PutObject", resource) == PermissionResult.NEUTRAL
    # and without a WSGI request (in-process moto) it stays moto's answer
    secure_transport.secure = None
    assert bucket.get_permission("s3:GetObject", resource) == PermissionResult.DENIED
    # and the stored policy is not changed by deciding it
    assert bucket.policy == stored


def test_fix6_without_the_condition_the_policy_is_moto_s_answer(s3, secure_transport):
    from moto.iam.access_control import PermissionResult

    unconditional = {k: v for k, v in TLS_ONLY.items() if k != "Condition"}
    bucket = _tls_only_bucket(s3, unconditional)
    for secure in (True, False, None):
        secure_transport.secure = secure
        assert bucket.get_permission("s3:GetObject", "arn:aws:s3:::reg/k") == PermissionResult.DENIED
    s3.delete_bucket_policy(Bucket="reg")
    assert bucket.get_permission("s3:GetObject", "arn:aws:s3:::reg/k") == PermissionResult.NEUTRAL


def test_fix6_in_process_moto_keeps_denying_under_the_tls_only_policy(s3, secure_transport):
    # Given the patch, and requests that never pass the WSGI layer (mock_aws in-process)
    _tls_only_bucket(s3, TLS_ONLY, READ_ALL)

    # Then moto's old answer: denied
    with pytest.raises(s3.exceptions.ClientError) as raised:
        s3.get_object(Bucket="reg", Key="k")
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert secure_transport.secure is None


def test_fix6_the_dispatcher_records_the_scheme_of_each_request(s3, secure_transport):
    """End to end through moto's WSGI dispatcher, called in-process (werkzeug's test client, no socket)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    # Given the TLS-only bucket, its object readable by anyone
    _tls_only_bucket(s3, TLS_ONLY, READ_ALL)
    client = Client(DomainDispatcherApplication(create_backend_app))

    # When it is read over plain HTTP, then over HTTPS
    plain = client.get("/reg/k", base_url="http://s3.amazonaws.com")
    assert secure_transport.secure is False
    tls = client.get("/reg/k", base_url="https://s3.amazonaws.com")
    assert secure_transport.secure is True

    # Then plain HTTP is denied, as on AWS, and HTTPS is allowed
    assert plain.status_code == 403
    assert (tls.status_code, tls.data) == (200, b"hello")
