"""A loopback HTTP proxy that adds a fixed delay to every request: S3-like latency for the emulator.

The emulator answers in about a millisecond; S3 answers small requests in tens of milliseconds. Both
sides of a benchmark talk to the emulator through this proxy, which sleeps ``delay`` seconds before
forwarding each request (keep-alive connections, bodies streamed through) and counts requests by
method and path shape. Run as ``python -m harness.latency --listen-port N --target URL``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"}


def classify(method: str, target: str) -> str:
    """The S3 API of a request, from its method and query (as counted at the emulator)."""
    query = urlsplit(target).query
    params = {p.split("=", 1)[0] for p in query.split("&") if p}
    path = urlsplit(target).path.strip("/")
    on_bucket = "/" not in path
    if method == "GET":
        if "versions" in params:
            return "ListObjectVersions"
        if on_bucket and "list-type" in params:
            return "ListObjectsV2"
        if on_bucket and params & {"versioning", "lifecycle", "encryption", "policy", "publicAccessBlock"}:
            return "GetBucketSettings"
        if on_bucket:
            return "ListObjects"
        return "GetObject"
    if method == "HEAD":
        return "HeadBucket" if on_bucket else "HeadObject"
    if method == "PUT":
        return "PutObject/CopyObject" if "partNumber" not in params else "UploadPart"
    if method == "DELETE":
        return "DeleteObject"
    if method == "POST":
        if "delete" in params:
            return "DeleteObjects"
        return "Multipart"
    return method


class LatencyProxy:
    """Start with ``LatencyProxy(target, delay)``; ``counts`` is a Counter of API -> requests."""

    def __init__(self, target: str, delay: float, port: int = 0) -> None:
        self.target = urlsplit(target)
        self.delay = delay
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        proxy = self
        local = threading.local()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in separate writes

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _connection(self) -> http.client.HTTPConnection:
                conn = getattr(local, "conn", None)
                if conn is None:
                    conn = http.client.HTTPConnection(
                        proxy.target.hostname or "127.0.0.1", proxy.target.port, timeout=600
                    )
                    local.conn = conn
                return conn

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _forward(self) -> None:
                body = self._body()
                with proxy._lock:
                    proxy.counts[classify(self.command, self.path)] += 1
                time.sleep(proxy.delay)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body or self.command in ("PUT", "POST"):
                    headers["Content-Length"] = str(len(body))
                for attempt in (1, 2):
                    conn = self._connection()
                    try:
                        conn.request(self.command, self.path, body=body, headers=headers)
                        response = conn.getresponse()
                        break
                    except (ConnectionError, http.client.HTTPException):
                        conn.close()
                        local.conn = None
                        if attempt == 2:
                            raise
                self.send_response_only(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                payload = response.read()
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(payload)))
                else:
                    length = response.getheader("Content-Length")
                    if length is not None:
                        self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def take_counts(self) -> Counter[str]:
        """The counts so far, and start counting afresh."""
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="loopback proxy adding a fixed delay per request")
    parser.add_argument("--listen-port", type=int, default=0)
    parser.add_argument("--target", required=True, help="e.g. http://127.0.0.1:5000 (loopback only)")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args(argv)
    if urlsplit(args.target).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("error: the target must be a loopback address")
    proxy = LatencyProxy(args.target, args.delay_ms / 1000, args.listen_port)
    print(json.dumps({"endpoint_url": proxy.endpoint_url}), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        proxy.close()


if __name__ == "__main__":
    main()
