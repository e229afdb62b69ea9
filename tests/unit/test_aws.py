import pytest


def test_listing_timestamps_parse_like_botocore_but_fast_path_for_iso8601():
    from botocore.utils import parse_timestamp as botocore_parse

    from regvault.aws.listing import parse_timestamp

    for text in (
        "2026-11-26T20:26:50.000Z",
        "2026-11-26T20:26:50Z",
        "2026-11-26T20:26:50.123+01:00",
        "Thu, 26 Nov 2026 20:26:50 GMT",
        "1795000000",
    ):
        assert parse_timestamp(text) == botocore_parse(text), text
        assert parse_timestamp(text).tzinfo is not None


def test_versions_pages_parse_exactly_like_botocore(s3, bucket, monkeypatch):
    import random

    import boto3

    from regvault.aws import listing
    from regvault.aws.clients import s3_client

    from .builders import random_history

    rng = random.Random(4)
    names = ["a/b&<1>", "plain", "a/c d", "ü/ß", "dir/x/y", "dir/z", "sp ace/+plus"]
    random_history(s3, bucket, names, 60, rng)
    fast_pages = []
    real = listing.parse_versions_page
    monkeypatch.setattr(listing, "parse_versions_page", lambda *a: fast_pages.append(1) or real(*a))
    fast = s3_client(region="us-east-1")
    plain = boto3.client("s3", region_name="us-east-1")
    queries = [
        {},
        {"MaxKeys": 4},
        {"Delimiter": "/"},
        {"Prefix": "dir/", "Delimiter": "/"},
        {"KeyMarker": "a/c d"},
    ]
    for query in queries:
        ours = fast.list_object_versions(Bucket=bucket, **query)
        reference = plain.list_object_versions(Bucket=bucket, **query)
        for response in (ours, reference):
            response.pop("ResponseMetadata")
        assert ours == reference, query
    assert len(fast_pages) == len(queries)  # every page took the fast path
    # an element the fast parser does not know: botocore's parser answers instead
    assert listing.parse_versions_page(
        b'<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<Name>b</Name></ListVersionsResult>",
        listing.parse_timestamp,
    ) == {"Name": "b"}
    with pytest.raises(listing._Unexpected):
        listing.parse_versions_page(
            b'<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Surprise/></ListVersionsResult>",
            listing.parse_timestamp,
        )


def test_error_sniffing_is_skipped_only_for_complete_listing_pages():
    from regvault.aws.listing import listing_or_error_check

    calls = []
    check = listing_or_error_check(lambda model, response, **_: calls.append(response["body"]))

    class Op:
        def __init__(self, name):
            self.name = name

    page = b'<?xml version="1.0"?><ListVersionsResult xmlns="x"><Name>b</Name></ListVersionsResult>\n'
    check(Op("ListObjectVersions"), {"status_code": 200, "body": page})
    assert calls == []
    # an error document, a page cut short, another operation: botocore's check runs
    for op, body in (
        ("ListObjectVersions", b"<Error><Code>InternalError</Code></Error>"),
        ("ListObjectVersions", page[:-30]),
        ("CopyObject", b"<CopyObjectResult></CopyObjectResult>"),
    ):
        check(Op(op), {"status_code": 200, "body": body})
    assert len(calls) == 3


def test_s3_client_still_lists_and_retries_through_botocore(s3, bucket):
    from regvault.aws.clients import s3_client

    client = s3_client(region="us-east-1")
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert [v["Key"] for v in client.list_object_versions(Bucket=bucket)["Versions"]] == ["k"]
    handlers = client.meta.events._emitter._lookup_cache["before-parse.s3.ListObjectVersions"]
    names = [getattr(h, "__name__", "") for h in handlers]
    assert "check" in names and "_handle_200_error" not in names
