"""Start helper processes and stop them by PID, whatever happens."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HarnessError(RuntimeError):
    pass


class Supervisor:
    """Owns child processes; ``close()`` (also at interpreter exit) stops each by PID."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        atexit.register(self.close)

    def start(
        self, name: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group: Ctrl-C goes to us, we stop it
        )
        log.close()
        self.children.append((name, proc))
        (self.workdir / f"{name}.pid").write_text(str(proc.pid))
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)

    def close(self) -> None:
        while self.children:
            name, proc = self.children.pop()
            self.stop(proc)
            (self.workdir / f"{name}.pid").unlink(missing_ok=True)

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_for_http(
    url: str,
    ok: Callable[[int], bool],
    proc: subprocess.Popen[bytes] | None,
    what: str,
    log: Callable[[], str],
    timeout: float = 30.0,
) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise HarnessError(f"{what} exited with {proc.returncode}:\n{log()}")
        try:
            # readiness only, on loopback: the harness's own self-signed certificate is not checked here
            context = ssl._create_unverified_context() if url.startswith("https:") else None  # noqa: S323
            with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            last = str(exc)
            time.sleep(0.1)
            continue
        if ok(status):
            return
        last = f"HTTP {status}"
        time.sleep(0.1)
    raise HarnessError(f"{what} did not become ready at {url} ({last}):\n{log()}")
