"""ListObjectVersions pages, parsed fast, and what S3 listings become: ``VersionRecord``.

botocore's generic XML parser walks the service model for every element: about 100 µs per listed
version, most of the audit's own CPU on a big bucket. A page is flat and fixed in shape, so it is
parsed here with ElementTree; anything unexpected (an element we do not know, an error) goes to
botocore's parser, which stays the reference (tests compare both on random listings).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botocore.parsers import ResponseParserFactory
from botocore.utils import parse_timestamp as botocore_parse_timestamp

from regvault.storage.store import VersionRecord


def parse_timestamp(value: str) -> datetime:
    """S3's timestamps: ISO 8601 in listings (fast path), RFC 1123 in headers (botocore's parser)."""
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            return parsed
    except (TypeError, ValueError):
        pass
    result: datetime = botocore_parse_timestamp(value)
    return result


_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_TOP_TEXT = (
    "KeyMarker",
    "VersionIdMarker",
    "NextKeyMarker",
    "NextVersionIdMarker",
    "Name",
    "Prefix",
    "Delimiter",
    "EncodingType",
)
_EMPTY_PAGE = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></ListVersionsResult>'
)


class _Unexpected(Exception):
    pass


def _text(element: Any) -> str:
    return element.text or ""


def _bool(element: Any) -> bool:
    return _text(element) == "true"


def _owner(element: Any) -> dict[str, str]:
    out = {}
    for child in element:
        name = child.tag[len(_S3_NS) :]
        if name not in ("DisplayName", "ID"):
            raise _Unexpected(name)
        out[name] = _text(child)
    return out


def _entry(element: Any, timestamp: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for child in element:
        name = child.tag[len(_S3_NS) :]
        if name in ("ETag", "StorageClass", "Key", "VersionId", "ChecksumType"):
            out[name] = _text(child)
        elif name == "Size":
            out[name] = int(_text(child))
        elif name == "IsLatest":
            out[name] = _bool(child)
        elif name == "LastModified":
            out[name] = timestamp(_text(child))
        elif name == "Owner":
            out[name] = _owner(child)
        elif name == "ChecksumAlgorithm":
            out.setdefault(name, []).append(_text(child))
        else:
            raise _Unexpected(name)
    return out


def parse_versions_page(body: bytes, timestamp: Any) -> dict[str, Any]:
    """The members of a ListObjectVersions response body, as botocore's parser builds them."""
    from xml.etree import ElementTree

    root = ElementTree.fromstring(body)  # noqa: S314 - the S3 endpoint's reply
    if root.tag != f"{_S3_NS}ListVersionsResult":
        raise _Unexpected(root.tag)
    out: dict[str, Any] = {}
    for child in root:
        name = child.tag[len(_S3_NS) :]
        if name == "Version":
            out.setdefault("Versions", []).append(_entry(child, timestamp))
        elif name == "DeleteMarker":
            out.setdefault("DeleteMarkers", []).append(_entry(child, timestamp))
        elif name == "CommonPrefixes":
            prefix = {c.tag[len(_S3_NS) :]: _text(c) for c in child}
            if set(prefix) - {"Prefix"}:
                raise _Unexpected("CommonPrefixes")
            out.setdefault("CommonPrefixes", []).append(prefix)
        elif name == "IsTruncated":
            out[name] = _bool(child)
        elif name == "MaxKeys":
            out[name] = int(_text(child))
        elif name in _TOP_TEXT:
            out[name] = _text(child)
        else:
            raise _Unexpected(name)
    return out


class _FastListVersionsParser:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def parse(self, response: dict[str, Any], shape: Any) -> Any:
        body = response.get("body")
        if (
            shape is None
            or getattr(shape, "name", None) != "ListObjectVersionsOutput"
            or response.get("status_code") != 200
            or not isinstance(body, bytes)
        ):
            return self.inner.parse(response, shape)
        try:
            members = parse_versions_page(body, self.inner._timestamp_parser)
        except Exception:
            return self.inner.parse(response, shape)
        # headers and ResponseMetadata exactly as botocore builds them, from an empty page
        parsed = self.inner.parse({**response, "body": _EMPTY_PAGE}, shape)
        parsed.update(members)
        return parsed

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class FastListingParserFactory(ResponseParserFactory):  # type: ignore[misc]
    def create_parser(self, protocol_name: str) -> Any:
        parser = super().create_parser(protocol_name)
        return _FastListVersionsParser(parser) if protocol_name == "rest-xml" else parser


def use_fast_listing_parser(session: Any) -> None:
    """Make the clients of a boto3 session parse ListObjectVersions pages here.

    S3 lists a LastModified per version: botocore's default (dateutil) parser took most of the CPU of a
    million-version listing; ISO 8601 goes through datetime.fromisoformat instead (``parse_timestamp``).
    """
    factory = FastListingParserFactory()
    factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    session._session.register_component("response_parser_factory", factory)


def listing_or_error_check(handler: Any) -> Any:
    """botocore parses every 200 S3 body once more only to see whether it is an <Error> (then it
    retries): a second full XML parse of each listing page. A complete ListVersionsResult document is
    not an error; anything else still goes through botocore's check."""

    def check(operation_model: Any, response_dict: Any, **kwargs: Any) -> Any:
        body = response_dict.get("body") if response_dict else None
        if (
            getattr(operation_model, "name", None) == "ListObjectVersions"
            and response_dict.get("status_code") == 200
            and isinstance(body, bytes)
            and body.rstrip().endswith(b"</ListVersionsResult>")
            and b"<ListVersionsResult" in body[:512]
        ):
            return None
        return handler(operation_model, response_dict, **kwargs)

    return check


def skip_error_sniffing_for_complete_listings(client: Any) -> None:
    from botocore import handlers

    original = getattr(handlers, "_handle_200_error", None)
    if original is None:  # a botocore without it: nothing to skip
        return
    client.meta.events.unregister("before-parse.s3.*", original)
    client.meta.events.register_first("before-parse.s3.*", listing_or_error_check(original))


def records(response: dict[str, Any]) -> list[VersionRecord]:
    """The versions and delete markers of a ListObjectVersions response, versions first."""
    return [_record(item, False) for item in response.get("Versions", ())] + [
        _record(item, True) for item in response.get("DeleteMarkers", ())
    ]


def _record(item: dict[str, Any], is_delete_marker: bool) -> VersionRecord:
    return VersionRecord(
        key=item["Key"],
        version_id=item.get("VersionId") or "null",
        last_modified=item["LastModified"],
        is_latest=bool(item.get("IsLatest")),
        is_delete_marker=is_delete_marker,
        size=0 if is_delete_marker else int(item.get("Size", 0)),
        etag=None if is_delete_marker or not item.get("ETag") else str(item["ETag"]).strip('"'),
    )
