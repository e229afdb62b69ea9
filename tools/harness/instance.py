"""An emulated EC2 instance that really runs what SSM sends it: a private mount namespace with its own
Docker Engine, and a local stand-in for ECR Public. Only loopback, only root.

- The namespace (``unshare --mount --propagation private``, held by a ``sleep``) has an overlay over
  ``/etc`` whose ``hosts`` maps ``public.ecr.aws`` to the ECR stand-in's loopback address and
  ``registry.regvault.test`` to ``::1`` (outside dockerd's insecure 127.0.0.0/8: TLS is verified for
  that name), whose ``resolv.conf`` names only 127.0.0.1 (no DNS query leaves the machine) and whose
  ``docker/certs.d/public.ecr.aws/ca.crt`` trusts the stand-in; private ``/run`` and ``/root``
  (``/var/run/docker.sock`` is this instance's daemon, ``docker login`` writes to its own ``/root``).
  Nothing written under ``/etc`` there (``/etc/regvault``) reaches the machine's ``/etc``.
- ``dockerd`` runs in it with ``--bridge=none --iptables=false``, its own data root, exec root and
  pidfile; containers can only use ``--network host``. The instance's ``systemctl`` (first on the
  script's ``PATH``) knows the ``docker`` unit, so a script that finds Docker installed but stopped
  starts it as on a real instance (``docker_running=False`` to begin that way).
- ``run_command`` runs a shell command there as the SSM agent does (``sh -c <script file>``, the
  agent's small environment): ``harness.ssm_runner`` calls it for ``SendCommand``.

Teardown (``close``, also on failure): every container removed, dockerd stopped by its PID, then
every process left in the namespace killed, then the namespace's holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.processes import HarnessError, Supervisor, wait_for_http
from harness.stand_ins import AWS_CLI_TAG, build_storage, cache_dir, publish_aws_cli

TLS_NAME = "registry.regvault.test"  # resolves to ::1 in the namespace: dockerd verifies its TLS
DOCKER = "/usr/bin/docker"  # Debian's docker.io client, as on the instance
AGENT_PATH = "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"


def engine_unavailable() -> str | None:
    """Why no Docker Engine can run here (None when one can): root, dockerd, unshare and nsenter."""
    if os.geteuid() != 0:
        return "not root (dockerd needs root)"
    for tool in ("dockerd", "unshare", "nsenter", "curl"):
        if not shutil.which(tool):
            return f"no {tool} (apt-get install -y docker.io curl)"
    if not Path(DOCKER).exists():
        return f"no Docker CLI at {DOCKER} (apt-get install -y docker.io)"
    return None


def harness_ca() -> tuple[Path, Path]:
    """(certificate, key) of the harness's own CA, made once: it serves the ECR stand-in
    (``public.ecr.aws``) and the emulator's TLS listener, and the stand-in images trust it."""
    from regvault.setup.secrets import self_signed

    cert, key = cache_dir() / "harness-ca.crt", cache_dir() / "harness-ca.key"
    if not cert.exists() or not key.exists():
        cache_dir().mkdir(parents=True, exist_ok=True)
        pem, private = self_signed(["public.ecr.aws", "localhost"], ["127.0.0.1", "::1"], days=3650)
        key.write_text(private)
        key.chmod(0o600)
        cert.write_text(pem)
    return cert, key


def _free_loopback_443() -> str:
    for _ in range(50):
        address = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"  # noqa: S311
        with socket.socket() as probe:
            try:
                probe.bind((address, 443))
            except OSError:
                continue
        return address
    raise HarnessError("no free loopback address for the ECR Public stand-in on port 443")


class PublicEcr:
    """``docker-registry`` as ``public.ecr.aws`` on ``<loopback address>:443`` (TLS, filesystem
    storage copied from the cached stand-in images)."""

    def __init__(self, supervisor: Supervisor, workdir: Path, progress: bool = False) -> None:
        from harness.registry import RegistryServer, registry_binary

        cert, key = harness_ca()
        self.ca = cert
        self.storage = workdir / "ecr-data"
        if self.storage.exists():
            shutil.rmtree(self.storage)
        shutil.copytree(build_storage(cert.read_text(), progress), self.storage)
        self.address = _free_loopback_443()
        config = workdir / "ecr.yml"
        config.write_text(
            json.dumps(
                {
                    "version": 0.1,
                    "log": {"level": "warn", "accesslog": {"disabled": True}},
                    "storage": {"filesystem": {"rootdirectory": str(self.storage)}},
                    "http": {
                        "addr": f"{self.address}:443",
                        "tls": {"certificate": str(cert), "key": str(key)},
                    },
                }
            )
        )
        proc = supervisor.start(
            "public-ecr", [registry_binary(), "serve", str(config)], env=RegistryServer.env()
        )
        wait_for_http(
            f"https://{self.address}:443/v2/",
            lambda status: status == 200,
            proc,
            "ECR Public stand-in",
            lambda: supervisor.log_tail("public-ecr"),
        )

    def aws_cli_for(self, endpoint_url: str, access_key: str, secret_key: str, tag: str = AWS_CLI_TAG) -> str:
        """Publish the aws-cli stand-in under ``tag`` with this emulator's endpoint and keys."""
        return publish_aws_cli(self.storage, tag, endpoint_url, access_key, secret_key)


_SYSTEMCTL = """#!/bin/bash
# systemctl of an emulated instance (regvault's harness): it knows the docker unit only.
RUN={run}
SOCK={sock}
running() {{
  [ -S /run/docker.sock ] && [ -f "$RUN/dockerd.pid" ] && kill -0 "$(cat "$RUN/dockerd.pid")" 2>/dev/null
}}
unit=""; action=""
for arg in "$@"; do
  case "$arg" in
    --now|--quiet|-q|--no-block) ;;
    docker|docker.service) unit=docker ;;
    *) [ -z "$action" ] && action=$arg ;;
  esac
done
if [ "$unit" != docker ]; then echo "systemctl (emulated instance): unit not found: $*" >&2; exit 5; fi
case "$action" in
  is-active) running ;;
  enable|start|restart)
    if [ "$action" = enable ] && [[ " $* " != *" --now "* ]]; then exit 0; fi
    if [ "$action" = restart ] && running; then kill -TERM "$(cat "$RUN/dockerd.pid")"; sleep 1; fi
    running && exit 0
    rm -f /run/docker.sock
    setsid dockerd --storage-driver overlay2 --bridge=none \\
      --iptables=false --ip6tables=false --ip-masq=false \\
      --data-root "$RUN/data" --exec-root /run/docker-exec --pidfile "$RUN/dockerd.pid" \\
      --cgroup-parent /regvault-instance -H unix:///run/docker.sock -H "unix://$SOCK" \\
      >>"$RUN/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 300); do
      if running && /usr/bin/docker version >/dev/null 2>&1; then exit 0; fi
      sleep 0.1
    done
    echo "docker.service failed to start; see $RUN/dockerd.log" >&2; exit 1 ;;
  stop)
    if running; then
      pid=$(cat "$RUN/dockerd.pid"); kill -TERM "$pid"
      for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
      kill -KILL "$pid"
    fi ;;
  *) echo "systemctl (emulated instance): $action is not emulated" >&2; exit 1 ;;
esac
"""


class EmulatedInstance:
    """See the module's doc. ``hosts``: extra ``/etc/hosts`` lines of the instance."""

    def __init__(
        self,
        supervisor: Supervisor,
        workdir: Path,
        ecr: PublicEcr,
        docker_running: bool = True,
        hosts: list[str] | None = None,
    ) -> None:
        reason = engine_unavailable()
        if reason:
            raise HarnessError(f"no Docker Engine can run here: {reason}")
        self.supervisor = supervisor
        self.run_dir = workdir / "instance"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("etc-upper", "etc-work", "data", "exec", "bin", "commands", "client"):
            shutil.rmtree(self.run_dir / sub, ignore_errors=True)  # a new instance: nothing kept
            (self.run_dir / sub).mkdir()
        systemctl = self.run_dir / "bin" / "systemctl"
        # unix socket paths stop at 108 bytes: the exec root (containerd's socket) lives in the instance's
        # private /run, and the machine-side socket in a short directory of its own
        self.sock_dir = Path(tempfile.mkdtemp(prefix="rvd-", dir="/tmp"))
        systemctl.write_text(_SYSTEMCTL.format(run=self.run_dir, sock=self.sock_dir / "docker.sock"))
        systemctl.chmod(0o755)
        host_lines = [f"{ecr.address} public.ecr.aws", f"::1 {TLS_NAME}", *(hosts or [])]
        run = self.run_dir
        inner = "; ".join(
            [
                "set -eu",
                "mount -t overlay overlay -o "
                f'"lowerdir=/etc,upperdir={run}/etc-upper,workdir={run}/etc-work" /etc',
                f"printf '%s\\n' {' '.join(repr(line) for line in host_lines)} >> /etc/hosts",
                "rm -f /etc/resolv.conf",
                "printf 'nameserver 127.0.0.1\\n' > /etc/resolv.conf",
                "mkdir -p /etc/docker/certs.d/public.ecr.aws",
                f"cp {ecr.ca} /etc/docker/certs.d/public.ecr.aws/ca.crt",
                "mount -t tmpfs -o mode=0755 tmpfs /run",
                "mount -t tmpfs -o mode=0700 tmpfs /root",
                f"touch {run}/namespace-ready",
                "exec sleep infinity",
            ]
        )
        (run / "namespace-ready").unlink(missing_ok=True)
        self.holder = supervisor.start(
            "instance-namespace", ["unshare", "--mount", "--propagation", "private", "bash", "-c", inner]
        )
        deadline = time.monotonic() + 20
        while not (run / "namespace-ready").exists():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                raise HarnessError(
                    "the instance's namespace did not start:\n" + supervisor.log_tail("instance-namespace")
                )
            time.sleep(0.05)
        self.docker_host = f"unix://{self.sock_dir}/docker.sock"
        if docker_running:
            self.systemctl("start", "docker")

    # --- running things on the instance -------------------------------------------------------
    def ns(self, argv: list[str]) -> list[str]:
        """``argv`` inside the instance's mount namespace."""
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--", *argv]

    def agent_env(self) -> dict[str, str]:
        """The environment the SSM agent gives a command (no AWS or Docker settings)."""
        return {"PATH": f"{self.run_dir}/bin:{AGENT_PATH}", "HOME": "/root", "LANG": "C.UTF-8"}

    def run_command(self, script: Path, stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
        """Start ``sh -c <script>`` as the SSM agent does; the caller owns the process."""
        with stdout.open("wb") as out, stderr.open("wb") as err:
            return subprocess.Popen(
                self.ns(["sh", "-c", str(script)]),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=self.agent_env(),
                start_new_session=True,
            )

    def sh(self, argv: list[str], input: str | None = None, check: bool = True, timeout: float = 300) -> Any:
        """Run ``argv`` in the namespace with the agent's environment (text in, text out)."""
        result = subprocess.run(
            self.ns(argv), input=input, capture_output=True, text=True, env=self.agent_env(), timeout=timeout,
            check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise HarnessError(
                f"{argv} failed ({result.returncode}): {result.stdout[-800:]}{result.stderr[-1500:]}"
            )
        return result

    def systemctl(self, *args: str) -> None:
        self.sh([str(self.run_dir / "bin" / "systemctl"), *args])

    def docker(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 300) -> Any:
        """The Docker CLI against this instance's daemon, as a client on the instance: the daemon
        resolves names and trusts CAs through the instance's ``/etc``; logins go to ``client/``."""
        env = {
            **self.agent_env(),
            "DOCKER_HOST": self.docker_host,
            "DOCKER_CONFIG": str(self.run_dir / "client"),
        }
        result = subprocess.run(
            [DOCKER, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"docker {' '.join(args)} failed ({result.returncode}): {result.stderr[-1500:]}"
            )
        return result

    def docker_build(self, context: Path, tag: str) -> None:
        """``docker build`` (the classic builder: no BuildKit plugin in Debian's docker.io 20.10)."""
        env = {**self.agent_env(), "DOCKER_HOST": self.docker_host, "DOCKER_BUILDKIT": "0"}
        result = subprocess.run(
            [DOCKER, "build", "-q", "-t", tag, str(context)], capture_output=True, text=True, env=env,
            timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise HarnessError(f"docker build failed: {result.stderr[-1500:]}")

    def trust(self, host_port: str, ca_pem: str) -> None:
        """Put a CA in the instance's ``/etc/docker/certs.d/<host:port>/ca.crt``."""
        self.sh(["mkdir", "-p", f"/etc/docker/certs.d/{host_port}"])
        self.sh(["tee", f"/etc/docker/certs.d/{host_port}/ca.crt"], input=ca_pem)

    def read(self, path: str) -> str:
        return str(self.sh(["cat", path]).stdout)

    def registration(self) -> dict[str, Any]:
        """What the emulator needs to run commands here (``harness.ssm_runner``)."""
        return {"holder_pid": self.holder.pid, "run_dir": str(self.run_dir), "env": self.agent_env()}

    # --- teardown -------------------------------------------------------------------------------
    def _namespace_pids(self) -> list[int]:
        try:
            mine = os.stat(f"/proc/{self.holder.pid}/ns/mnt").st_ino
        except OSError:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != self.holder.pid:
                with contextlib.suppress(OSError):
                    if os.stat(entry / "ns" / "mnt").st_ino == mine:
                        pids.append(int(entry.name))
        return pids

    def close(self) -> None:
        if self.holder.poll() is None:
            if (self.sock_dir / "docker.sock").exists():
                ids = self.docker("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=60)
            with contextlib.suppress(HarnessError, subprocess.TimeoutExpired):
                self.systemctl("stop", "docker")
            for pid in self._namespace_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.supervisor.stop(self.holder)
        shutil.rmtree(self.run_dir / "data", ignore_errors=True)
        shutil.rmtree(self.sock_dir, ignore_errors=True)
