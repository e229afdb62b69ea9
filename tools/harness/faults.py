"""An S3 fault injector for reliability tests: botocore ``before-send`` hooks on one client.

At a chosen rate (seeded, reproducible) a request is answered with 503 SlowDown, 500 InternalError,
a connection reset, a read timeout, or — for GetObject — a body cut short. botocore's retries see
exactly what they would see from S3; regvault's own reads retry a truncated body.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError

KINDS = ("slowdown", "internal", "reset", "timeout", "truncated")


class _Raw:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._done = False

    def read(self, amt: int | None = None, **_: Any) -> bytes:
        if self._done:
            return b""
        self._done = True
        return self._data

    def stream(self, *_: Any, **__: Any) -> Any:
        yield self.read()

    def close(self) -> None:
        pass


def _error(url: str, status: int, code: str) -> AWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected</Message></Error>".encode()
    return AWSResponse(
        url, status, {"Content-Type": "application/xml", "Content-Length": str(len(body))}, _Raw(body)
    )


class FaultInjector:
    def __init__(
        self,
        client: Any,
        rate: float,
        seed: int = 7,
        kinds: tuple[str, ...] = KINDS,
        operations: tuple[str, ...] | None = None,
    ) -> None:
        self.rate = rate
        self.kinds = kinds
        self.operations = operations
        self.rng = random.Random(seed)  # noqa: S311 - test faults, not secrets
        self.injected: Counter[str] = Counter()
        self.requests = 0
        client.meta.events.register("before-send.s3", self)

    def __call__(self, request: Any, event_name: str = "", **_: Any) -> AWSResponse | None:
        operation = event_name.rsplit(".", 1)[-1]
        if self.operations is not None and operation not in self.operations:
            return None
        self.requests += 1
        if self.rng.random() >= self.rate:
            return None
        kinds = [k for k in self.kinds if k != "truncated" or operation == "GetObject"]
        kind = self.rng.choice(kinds)
        self.injected[kind] += 1
        if kind == "slowdown":
            return _error(request.url, 503, "SlowDown")
        if kind == "internal":
            return _error(request.url, 500, "InternalError")
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        if kind == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        return AWSResponse(request.url, 200, {"Content-Length": "4096", "ETag": '"x"'}, _Raw(b"cut short"))

    @property
    def total(self) -> int:
        return sum(self.injected.values())
