"""Two fidelity fixes for moto's S3 (moto 5.2.x), applied in the emulator process only.

1. Delimiter listings (ListObjects/ListObjectsV2) must not report a "folder" whose keys are all
   delete-marked. moto computes folders before it drops delete markers, so the registry kept
   listing deleted tags and repositories. Real S3 only rolls up keys whose latest version is data.
2. ListObjectVersions deep-copied every version of every key (bodies included) on every call and
   then sorted them all: seconds per page on a registry-sized bucket. This version reads the keys
   in name order, starts at the marker with a binary search, and copies nothing. It never copies
   or closes a key's data buffer: moto's key objects close their buffer when garbage-collected, and
   a shared-buffer copy being collected made the registry read closed files (HTTP 500).

3. Listing cost: moto sorted every key name of the bucket on every list request (and
   ListObjectsV2 rolled up the whole prefix before cutting one page), so a page cost O(K log K):
   a million-version registry took minutes per audit and hours per garbage-collect in the emulator
   alone. The sorted names are now kept per bucket (dropped when a key name appears or goes), pages
   start at their marker by binary search and stop once full. Same results (tests compare with
   moto's own code over random buckets).

4. ListObjectVersions' response went through moto's generic, reflective XML serializer: about half
   a second per page of 1,000 versions, ten times what S3 takes, and it dominated every
   version-listing figure (regvault's and s3-pit-restore's alike). The page is now written directly;
   a test compares it byte for byte with moto's serializer.

5. GetBucketNotificationConfiguration left out ``EventBridgeConfiguration`` although moto stores it:
   a read-modify-write of the bucket's notifications (the setup turning EventBridge delivery on next
   to a user's own queues) could never see it was on. It is now answered as S3 answers it.

6. A bucket policy's ``aws:SecureTransport`` condition was evaluated with no value, so a statement
   denying ``"aws:SecureTransport": "false"`` (the setup's TLS-only policy) denied every request,
   HTTPS or not. The emulator now says whether the request came over TLS (its ``--tls-port``
   listener): plain HTTP is still denied, as on AWS, and HTTPS is allowed.

Each fix has its own test (tests/unit/test_moto_patches.py).
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Iterator
from typing import Any

from moto.s3 import models as s3_models
from moto.s3.utils import _VersionedKeyStore

_NAMES_LOCK = threading.RLock()


def sorted_names(store: Any) -> list[str]:
    """The bucket's key names in order, cached until a name is added or removed (fix 3)."""
    with _NAMES_LOCK:
        names: list[str] | None = store.__dict__.get("_regvault_names")
        if names is None:
            names = sorted(dict.keys(store))
            store.__dict__["_regvault_names"] = names
        return names


def _prefix_range(names: list[str], prefix: str, after: str | None = None) -> Iterator[str]:
    """Names starting with ``prefix`` (and greater than ``after``), in order."""
    start = bisect.bisect_left(names, prefix)
    if after is not None and after >= prefix:
        start = max(start, bisect.bisect_right(names, after))
    for i in range(start, len(names)):
        name = names[i]
        if not name.startswith(prefix):
            break
        yield name


def tracked_methods(cls: Any) -> dict[str, Any]:
    """Key-store methods that drop the cached names whenever the store gains or loses a key name."""
    set_item, set_list, pop = cls.__setitem__, cls.setlist, cls.pop

    def __setitem__(self: Any, key: str, value: Any) -> Any:
        if dict.__contains__(self, key):
            return set_item(self, key, value)
        with _NAMES_LOCK:
            self.__dict__.pop("_regvault_names", None)
            return set_item(self, key, value)

    def setlist(self: Any, key: Any, list_: Any) -> Any:
        with _NAMES_LOCK:
            self.__dict__.pop("_regvault_names", None)
            return set_list(self, key, list_)

    def pop_(self: Any, key: str) -> None:
        with _NAMES_LOCK:
            self.__dict__.pop("_regvault_names", None)
            pop(self, key)

    def __delitem__(self: Any, key: str) -> None:
        with _NAMES_LOCK:
            self.__dict__.pop("_regvault_names", None)
            dict.__delitem__(self, key)

    return {"__setitem__": __setitem__, "setlist": setlist, "pop": pop_, "__delitem__": __delitem__}


_APPLIED = False


def list_objects(
    self: Any,
    bucket: Any,
    prefix: str | None,
    delimiter: str | None,
    marker: str | None,
    max_keys: int | None,
) -> Any:
    """moto's list_objects, with delete-marked keys dropped *before* folders are rolled up."""
    if isinstance(bucket, s3_models.FakeTableStorageBucket):
        raise s3_models.MethodNotAllowed()  # type: ignore[attr-defined]
    key_results = []
    folder_results = set()
    prefix = prefix or ""
    store = bucket.keys
    for key_name in _prefix_range(sorted_names(store), prefix):  # fix 3
        versions = store.getlist(key_name)
        if not versions:
            continue
        key = versions[-1]
        if isinstance(key, s3_models.FakeDeleteMarker):  # fix 1
            continue
        rest = key_name[len(prefix) :]
        if delimiter and delimiter in rest:
            folder_results.add(prefix + rest.split(delimiter)[0] + delimiter)
        else:
            key_results.append(key)
    key_results.sort(key=lambda key: key.name)
    folders = sorted(folder_results)
    if marker:
        limit = self._pagination_tokens.get(marker) or marker
        key_results = self._get_results_from_token(key_results, limit)
    if max_keys is not None:
        key_results, is_truncated, next_marker = self._truncate_result(key_results, max_keys)
    else:
        is_truncated, next_marker = False, None
    return key_results, folders, is_truncated, next_marker


def list_objects_v2(
    self: Any,
    bucket: Any,
    prefix: str | None,
    delimiter: str | None,
    continuation_token: str | None,
    start_after: str | None,
    max_keys: int,
) -> Any:
    """moto's ListObjectsV2 (keys and rolled-up folders in one name-ordered, paginated list), read
    from the cached names from the marker on, stopping when the page is full (fixes 1 and 3)."""
    if isinstance(bucket, s3_models.FakeTableStorageBucket):
        raise s3_models.MethodNotAllowed()  # type: ignore[attr-defined]
    prefix = prefix or ""
    limit = (self._pagination_tokens.get(continuation_token) if continuation_token else start_after) or None
    if max_keys == 0:
        return [], False, None
    store = bucket.keys
    page: list[Any] = []
    last_folder: str | None = None
    for name in _prefix_range(sorted_names(store), prefix, limit):
        folder = None
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                folder = name[: cut + len(delimiter)]
                if folder == last_folder or (limit is not None and folder <= limit):
                    continue
        versions = store.getlist(name)
        if not versions or isinstance(versions[-1], s3_models.FakeDeleteMarker):  # fix 1
            continue
        if folder is not None:
            last_folder = folder
            page.append(folder)
        else:
            page.append(versions[-1])
        if len(page) > max_keys:
            break
    return self._truncate_result(page, max_keys)


def list_object_versions(
    self: Any,
    bucket_name: str,
    delimiter: str | None = None,
    key_marker: str | None = None,
    max_keys: int | None = 1000,
    prefix: str = "",
    version_id_marker: str | None = None,
) -> Any:
    """S3 semantics: keys in name order, each key's versions newest first, markers exclusive."""
    bucket = self.get_bucket(bucket_name)
    prefix = prefix or ""
    store = bucket.keys
    names = sorted_names(store)  # fix 3: the bucket's cached names, bounded by the prefix below
    versions: list[Any] = []
    delete_markers: list[Any] = []
    common_prefixes: list[str] = []
    limit = 1000 if max_keys is None else max_keys
    count = 0
    next_key_marker = next_version_marker = None
    last_name: str | None = None
    last_version: str | None = None

    start = bisect.bisect_left(names, prefix)
    if key_marker:
        start = max(start, bisect.bisect_left(names, key_marker))
    i = start
    truncated = False
    while i < len(names):
        name = names[i]
        if not name.startswith(prefix):
            break
        if delimiter:
            cut = name.find(delimiter, len(prefix))
            if cut >= 0:
                rolled = name[: cut + len(delimiter)]
                if key_marker and rolled <= key_marker:
                    i += 1
                    continue
                if count >= limit:
                    truncated = True
                    break
                common_prefixes.append(rolled)
                count += 1
                last_name, last_version = rolled, None
                # skip every key under this common prefix
                i = bisect.bisect_left(names, rolled[:-1] + chr(ord(rolled[-1]) + 1), i)
                continue
        # newest first: moto appends versions oldest first
        key_versions = list(reversed(store.getlist(name)))
        skip_until: str | None = None
        if key_marker and name == key_marker:
            if not version_id_marker:
                i += 1
                continue
            skip_until = version_id_marker
        elif key_marker and name < key_marker:
            i += 1
            continue
        for position, version in enumerate(key_versions):
            if skip_until is not None:
                if version.version_id == skip_until:
                    skip_until = None
                continue
            if count >= limit:
                truncated = True
                break
            version.is_latest = position == 0
            if isinstance(version, s3_models.FakeDeleteMarker):
                delete_markers.append(version)
            else:
                versions.append(version)
            count += 1
            last_name, last_version = name, version.version_id
        if truncated:
            break
        i += 1
    if truncated:
        next_key_marker, next_version_marker = last_name, last_version
    return versions, common_prefixes, delete_markers, next_key_marker, next_version_marker


def _xml(text: Any) -> str:
    from xml.sax.saxutils import escape

    return escape(str(text))


def _tag(name: str, value: Any) -> str:
    if value is None:
        return ""
    if value == "":
        return f"<{name}/>"
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{name}>{_xml(value)}</{name}>"


def _owner(owner: dict[str, str]) -> str:
    return f"<Owner>{_tag('DisplayName', owner['DisplayName'])}{_tag('ID', owner['ID'])}</Owner>"


def versions_page_xml(result: dict[str, Any]) -> bytes:
    """moto's ListObjectVersions result dict as the XML its serializer writes (fix 4)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>\n<ListVersionsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    ]
    parts.append(_tag("IsTruncated", result["IsTruncated"]))
    for name in ("KeyMarker", "VersionIdMarker", "NextKeyMarker", "NextVersionIdMarker"):
        parts.append(_tag(name, result.get(name)))
    for v in result["Versions"]:
        parts.append(
            "<Version>"
            + _tag("ETag", v["ETag"])
            + _tag("Size", v["Size"])
            + _tag("StorageClass", v["StorageClass"])
            + _tag("Key", v["Key"])
            + _tag("VersionId", v["VersionId"])
            + _tag("IsLatest", v["IsLatest"])
            + _tag("LastModified", v["LastModified"])
            + _owner(v["Owner"])
            + "</Version>"
        )
    for m in result["DeleteMarkers"]:
        parts.append(
            "<DeleteMarker>"
            + _owner(m["Owner"])
            + _tag("Key", m["Key"])
            + _tag("VersionId", m["VersionId"])
            + _tag("IsLatest", m["IsLatest"])
            + _tag("LastModified", m["LastModified"])
            + "</DeleteMarker>"
        )
    for name in ("Name", "Prefix", "Delimiter", "MaxKeys"):
        parts.append(_tag(name, result.get(name)))
    for prefix in result.get("CommonPrefixes") or []:
        parts.append(f"<CommonPrefixes>{_tag('Prefix', prefix['Prefix'])}</CommonPrefixes>")
    parts.append("</ListVersionsResult>")
    return "".join(parts).encode()


def fast_list_object_versions(original: Any) -> Any:
    """Wrap moto's S3Response.list_object_versions: same result, the page written by hand."""
    from moto.core.responses import ActionResult

    def list_object_versions(self: Any) -> Any:
        real = self.serialized

        def serialized(action_result: Any) -> Any:
            result = action_result.result
            if not isinstance(result, dict) or "Versions" not in result:
                return real(action_result)
            light = {k: v for k, v in result.items() if k not in ("Versions", "DeleteMarkers")}
            status, headers, _ = real(ActionResult({**light, "Versions": [], "DeleteMarkers": []}))
            return status, headers, versions_page_xml(result)

        self.serialized = serialized
        try:
            return original(self)
        finally:
            del self.serialized

    list_object_versions.__wrapped__ = original  # type: ignore[attr-defined]
    return list_object_versions


def notification_with_event_bridge(original: Any) -> Any:
    """Fix 5: moto's GetBucketNotificationConfiguration with the EventBridge flag it stored."""

    def get_bucket_notification(self: Any) -> Any:
        config = self.backend.get_bucket_notification_configuration(self.bucket_name)
        if config is None or config.event_bridge is None:
            return original(self)
        status, headers, body = original(self)
        text = body.decode() if isinstance(body, bytes) else str(body)
        if "<EventBridgeConfiguration" not in text:
            closing = "</NotificationConfiguration>"
            if closing in text:
                text = text.replace(
                    closing, "<EventBridgeConfiguration></EventBridgeConfiguration>" + closing
                )
            else:  # an empty answer: no other target configured
                text = (
                    '<?xml version="1.0" encoding="UTF-8"?><NotificationConfiguration '
                    'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><EventBridgeConfiguration>'
                    "</EventBridgeConfiguration></NotificationConfiguration>"
                )
        return status, headers, text.encode()

    get_bucket_notification.__wrapped__ = original  # type: ignore[attr-defined]
    return get_bucket_notification


_TRANSPORT = threading.local()


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _transport_applies(statement: dict[str, Any], actual: str) -> bool:
    """Whether a statement's ``Bool aws:SecureTransport`` condition holds (the key is then removed)."""
    condition = statement.get("Condition") or {}
    boolean = condition.get("Bool") or {}
    if "aws:SecureTransport" not in boolean:
        return True
    expected = [str(v).lower() for v in _as_list(boolean.pop("aws:SecureTransport"))]
    if not boolean:
        condition.pop("Bool")
    if not condition:
        statement.pop("Condition", None)
    return actual in expected


def secure_transport_condition() -> None:
    """Fix 6: record each request's scheme and evaluate bucket policies with it."""
    from moto.iam.access_control import IAMPolicy, PermissionResult
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    call = DomainDispatcherApplication.__call__

    def dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        _TRANSPORT.secure = environ.get("wsgi.url_scheme") == "https"
        return call(self, environ, start_response)

    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        secure = getattr(_TRANSPORT, "secure", None)
        policy = json.loads(self.policy.decode())
        if secure is not None:  # moto knows no Bool operator: decide this one condition here
            policy["Statement"] = [
                st
                for st in _as_list(policy["Statement"])
                if _transport_applies(st, "true" if secure else "false")
            ]
        return IAMPolicy(json.dumps(policy)).is_action_permitted(action, resource)

    DomainDispatcherApplication.__call__ = dispatch  # type: ignore[method-assign]
    s3_models.FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


def apply() -> None:
    """Patch moto's S3 backend in this process (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    secure_transport_condition()
    s3_models.S3Backend.list_objects = list_objects  # type: ignore[method-assign]
    s3_models.S3Backend.list_objects_v2 = list_objects_v2  # type: ignore[method-assign]
    for name, method in tracked_methods(_VersionedKeyStore).items():
        setattr(_VersionedKeyStore, name, method)
    from moto.s3.responses import S3Response

    S3Response.list_object_versions = fast_list_object_versions(S3Response.list_object_versions)  # type: ignore[method-assign]
    s3_models.S3Backend.list_object_versions = list_object_versions  # type: ignore[method-assign]
    S3Response.get_bucket_notification = notification_with_event_bridge(S3Response.get_bucket_notification)  # type: ignore[method-assign]
    _APPLIED = True


# --- for running the Setup state machine inside the emulator (make demo) ---------------------------


def dispatch_lambda_to(module_path: str) -> None:
    """Run Lambda invocations through the real handlers of ``module_path`` (its ``app.<name>``
    handler names), as the Step Functions interpreter calls them."""
    import importlib.util
    import json
    import traceback

    from moto.awslambda_simple.models import LambdaSimpleBackend

    spec = importlib.util.spec_from_file_location("dispatched_handlers", module_path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Context:
        def __init__(self, name: str) -> None:
            self.function_name = name
            self.memory_limit_in_mb = 512
            self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
            self.aws_request_id = "emulated"

    def invoke(
        self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.rsplit(":", 1)[-1]
        function = self.get_function(name)
        handler = getattr(module, str(function.handler).split(".", 1)[1])
        try:
            return json.dumps(handler(json.loads(body or "{}"), Context(name))).encode()
        except Exception as exc:  # what Lambda reports for an unhandled error
            response_headers["x-amz-function-error"] = "Unhandled"
            traceback.print_exc()
            return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}).encode()

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
    from harness.ssm_agent import model_ssm_agent

    model_ssm_agent()
