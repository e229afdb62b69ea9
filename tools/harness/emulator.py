"""The local AWS emulator: moto server with regvault's S3 fidelity fixes, on 127.0.0.1.

Run as ``python -m harness.emulator --port N``; ``S3Emulator`` starts and stops it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.processes import Supervisor, free_port, wait_for_http

ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # noqa: S105 - the emulator accepts any credentials
REGION = "us-east-1"


class S3Emulator:
    def __init__(
        self,
        supervisor: Supervisor,
        port: int | None = None,
        lambda_handlers: str | None = None,
        preload: Path | None = None,
        name: str = "emulator",
        s3_events: tuple[str, dict[str, Any], dict[str, str]] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``s3_events``: (handler file, rule pattern, its environment): the bucket's object events the
        pattern matches go to that handler (``harness.s3_events``). ``tls``: (certificate, key) for a
        second listener on ``tls_endpoint_url`` (the same emulator over HTTPS: a bucket policy that
        denies plain HTTP allows it). Emulated instances (``harness.instance``) register in
        ``instances_dir``: SSM commands sent to them run there (``harness.ssm_runner``)."""
        self.supervisor = supervisor
        self.port = port or free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.instances_dir = supervisor.workdir / "instances"
        self.instances_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.pop("AWS_CA_BUNDLE", None)
        env["REGVAULT_INSTANCES_DIR"] = str(self.instances_dir)
        argv = [sys.executable, "-m", "harness.emulator", "--port", str(self.port)]
        self.tls_endpoint_url: str | None = None
        if tls is not None:
            self.tls_port = free_port()
            self.tls_endpoint_url = f"https://127.0.0.1:{self.tls_port}"
            argv += ["--tls-port", str(self.tls_port), "--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        if lambda_handlers:
            # the handlers call AWS: inside the emulator that is the emulator itself
            env.update(self.client_env())
            env.update(POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_SERVICE_NAME="regvault")
            argv += ["--lambda-handlers", lambda_handlers]
        if preload is not None:
            argv += ["--preload", str(preload)]
        if s3_events is not None:
            handler, pattern, handler_env = s3_events
            env.update(self.client_env())
            env.update(
                POWERTOOLS_TRACE_DISABLED="true",
                POWERTOOLS_SERVICE_NAME="regvault",
                POWERTOOLS_METRICS_NAMESPACE="regvault",
                **handler_env,
            )
            argv += ["--s3-events-handler", handler, "--s3-events-pattern", json.dumps(pattern)]
        self.name = name
        self.proc = supervisor.start(name, argv, env=env)
        wait_for_http(
            f"{self.endpoint_url}/moto-api/",
            lambda status: status == 200,
            self.proc,
            "S3 emulator (moto server)",
            lambda: supervisor.log_tail(name),
            # a preloaded registry of a million versions takes minutes to load
            timeout=30.0 if preload is None else 1800.0,
        )

    def client_env(self) -> dict[str, str]:
        """Environment for clients of the emulator (the CLI, boto3, tests)."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
        }

    def client(self, service: str = "s3") -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="moto server with regvault's S3 fidelity fixes")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lambda-handlers", help="a handler module: run Lambda invocations through it")
    parser.add_argument("--preload", type=Path, help="a generator file (harness.generator) to load first")
    parser.add_argument(
        "--s3-events-handler", help="a handler file: deliver the bucket's object events to it"
    )
    parser.add_argument("--s3-events-pattern", help="the EventBridge rule pattern (JSON) events must match")
    parser.add_argument("--tls-port", type=int, help="also listen here over TLS")
    parser.add_argument("--tls-cert", help="the TLS listener's certificate (PEM)")
    parser.add_argument("--tls-key", help="the TLS listener's key (PEM)")
    args = parser.parse_args(argv)
    from moto import server

    from harness import ssm_runner
    from harness.moto_patches import apply, dispatch_lambda_to
    from harness.ssm_agent import model_ssm_agent

    apply()
    model_ssm_agent()
    ssm_runner.install()
    if args.tls_port:
        _serve_tls(args.tls_port, args.tls_cert, args.tls_key)
    if args.lambda_handlers:
        from moto.core.config import default_user_config

        # what mock_aws(config=...) sets: run state machines, Lambda without Docker, AWS managed policies
        default_user_config["stepfunctions"] = {"execute_state_machine": True}
        default_user_config["lambda"] = {"use_docker": False}
        default_user_config["iam"] = {"load_aws_managed_policies": True}
        dispatch_lambda_to(args.lambda_handlers)
    if args.s3_events_handler:
        from harness.s3_events import install

        install(args.s3_events_handler, json.loads(args.s3_events_pattern or "{}"))
    if args.preload:
        from harness.generator import load_preload

        count = load_preload(args.preload)
        print(f"preloaded {count} object versions from {args.preload}", flush=True)
    server.main(["-H", "127.0.0.1", "-p", str(args.port)])


def _serve_tls(port: int, cert: str, key: str) -> None:
    """The same backends over HTTPS on 127.0.0.1:``port``, in a thread of this process."""
    import threading

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        "127.0.0.1", port, app, threaded=True, ssl_context=(cert, key), request_handler=MotoRequestHandler
    )
    threading.Thread(target=server.serve_forever, name="tls-listener", daemon=True).start()


if __name__ == "__main__":
    main()
