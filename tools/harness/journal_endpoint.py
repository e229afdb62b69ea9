"""The JournalFunction's Function URL, on loopback: each HTTP request the registry's notifications send
becomes the Function URL event Lambda would pass (headers lower-cased, body as text or base64,
``requestContext.http``), the real handler answers, and its answer goes back as the HTTP response."""

from __future__ import annotations

import base64
import importlib.util
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from harness import ROOT

HANDLER = ROOT / "functions" / "journal" / "app.py"


class JournalEndpoint:
    def __init__(self) -> None:
        spec = importlib.util.spec_from_file_location("journal_app", HANDLER)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # reads its environment now: set it before
        module.ports()  # its clients and the secret, made now, with this environment
        self.requests: list[int] = []
        endpoint = self

        class Context:
            function_name = "JournalFunction"
            memory_limit_in_mb = 256
            invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:JournalFunction"
            aws_request_id = "emulated"

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    text, encoded = body.decode(), False
                except UnicodeDecodeError:
                    text, encoded = base64.b64encode(body).decode(), True
                event = {
                    "version": "2.0",
                    "rawPath": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "requestContext": {"http": {"method": self.command, "sourceIp": self.client_address[0]}},
                    "body": text,
                    "isBase64Encoded": encoded,
                }
                answer = module.handler(event, Context())
                endpoint.requests.append(int(answer["statusCode"]))
                payload = str(answer.get("body", "")).encode()
                self.send_response(int(answer["statusCode"]))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = _answer
            do_GET = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="journal", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
