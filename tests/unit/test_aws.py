def test_listing_timestamps_parse_like_botocore_but_fast_path_for_iso8601():
    from botocore.utils import parse_timestamp as botocore_parse

    from regvault.aws import parse_timestamp

    for text in (
        "2026-11-26T20:26:50.000Z",
        "2026-11-26T20:26:50Z",
        "2026-11-26T20:26:50.123+01:00",
        "Thu, 26 Nov 2026 20:26:50 GMT",
        "1795000000",
    ):
        assert parse_timestamp(text) == botocore_parse(text), text
        assert parse_timestamp(text).tzinfo is not None
