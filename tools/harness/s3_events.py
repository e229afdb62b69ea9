"""The bucket's object events, delivered as S3 -> EventBridge -> Lambda delivers them, inside the
emulator process (moto server).

moto sends an EventBridge event for a put but not for a delete marker, and its rules cannot invoke a
Lambda without Docker. Here every new version (put, copy) and every delete marker of a bucket whose
notification configuration has EventBridge on becomes the standard EventBridge S3 event
(``detail-type`` "Object Created" / "Object Deleted", ``detail.bucket.name``, ``detail.object.key`` and
``version-id``); the events the template's rule pattern matches are delivered to the function's real
handler, asynchronously (after the S3 request answered, as AWS does), one at a time, in order.
"""

from __future__ import annotations

import importlib.util
import json
import queue
import threading
import time
import traceback
import uuid
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any

DELIVERED: list[dict[str, Any]] = []  # (in the emulator process) what was delivered, for the log


def matches(pattern: Any, value: Any) -> bool:
    """EventBridge's pattern matching, for the forms regvault's rules use: nested objects, lists of
    exact values, and ``{"wildcard": "…*…"}`` / ``{"prefix": …}`` / ``{"suffix": …}``."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(k in value and matches(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(_one(p, value) for p in pattern)
    return bool(pattern == value)


def _one(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, dict):
        if "wildcard" in pattern:
            return isinstance(value, str) and fnmatchcase(value, pattern["wildcard"])
        if "prefix" in pattern:
            return isinstance(value, str) and value.startswith(pattern["prefix"])
        if "suffix" in pattern:
            return isinstance(value, str) and value.endswith(pattern["suffix"])
        raise ValueError(f"pattern form not emulated: {pattern}")
    return bool(pattern == value)


def event(detail_type: str, bucket: str, key: str, version_id: str, reason: str) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "version": "0",
        "bucket": {"name": bucket},
        "object": {"key": key, "version-id": version_id, "sequencer": f"{time.monotonic_ns():020X}"},
        "request-id": uuid.uuid4().hex[:16].upper(),
        "requester": "123456789012",
        "source-ip-address": "127.0.0.1",
        "reason": reason,
    }
    if detail_type == "Object Deleted":
        detail["deletion-type"] = "Delete Marker Created"
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": detail,
    }


def install(handler_path: str, pattern: dict[str, Any], delay: float = 0.2) -> None:
    """Deliver matching object events to ``handler_path``'s ``handler`` (loaded on first use, with the
    environment the emulator was started with)."""
    from moto.s3.models import S3Backend

    pending: queue.Queue[dict[str, Any]] = queue.Queue()

    def emit(
        backend: Any, bucket_name: str, detail_type: str, key: str, version_id: Any, reason: str
    ) -> None:
        try:
            bucket = backend.get_bucket(bucket_name)
        except Exception:
            return
        config = bucket.notification_configuration
        if config is None or config.event_bridge is None:
            return
        pending.put(event(detail_type, bucket_name, key, str(version_id), reason))

    put_object = S3Backend.put_object
    set_delete_marker = S3Backend._set_delete_marker

    def put(self: Any, bucket_name: str, key_name: str, *args: Any, **kwargs: Any) -> Any:
        new = put_object(self, bucket_name, key_name, *args, **kwargs)
        emit(self, bucket_name, "Object Created", key_name, getattr(new, "version_id", None), "PutObject")
        return new

    def mark(self: Any, bucket_name: str, key_name: str) -> Any:
        marker = set_delete_marker(self, bucket_name, key_name)
        emit(self, bucket_name, "Object Deleted", key_name, marker.version_id, "DeleteObject")
        return marker

    S3Backend.put_object = put  # type: ignore[method-assign]
    S3Backend._set_delete_marker = mark  # type: ignore[method-assign]

    class Context:
        function_name = "GuardFunction"
        memory_limit_in_mb = 1024
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:GuardFunction"
        aws_request_id = "emulated"

    def deliver() -> None:
        module = None
        while True:
            item = pending.get()
            if not matches(pattern, item):
                continue
            time.sleep(delay)  # the S3 request has answered before EventBridge delivers
            try:
                if module is None:
                    spec = importlib.util.spec_from_file_location("delivered_handler", handler_path)
                    assert spec is not None and spec.loader is not None
                    module = importlib.util.module_from_spec(spec)
                    spec.loader.exec_module(module)
                result = module.handler(item, Context())
                DELIVERED.append(item)
                print("s3 event delivered:", json.dumps(result, default=str), flush=True)
            except Exception:
                print("s3 event handler failed:\n" + traceback.format_exc(), flush=True)

    threading.Thread(target=deliver, name="s3-events", daemon=True).start()
