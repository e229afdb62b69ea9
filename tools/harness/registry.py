"""The real registry (Debian ``docker-registry``, distribution 2.8.2) on loopback, over the emulator."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from harness.emulator import ACCESS_KEY, REGION, SECRET_KEY, S3Emulator
from harness.processes import HarnessError, Supervisor, free_port, wait_for_http
from regvault.setup.registry_config import RegistrySettings, render
from regvault.setup.secrets import htpasswd

REGISTRY_BINARY = "docker-registry"


def self_signed_certificate(cert_path: Path, key_path: Path) -> None:
    """A certificate for 127.0.0.1/localhost, its own CA (skopeo trusts it through --cert-dir); made
    by the same code the setup uses for test setups without a TlsSecretArn."""
    from regvault.setup.secrets import self_signed

    certificate, key = self_signed(["localhost"], ["127.0.0.1"], days=7)
    cert_path.write_text(certificate)
    key_path.write_text(key)
    key_path.chmod(0o600)


def registry_binary() -> str:
    path = shutil.which(REGISTRY_BINARY)
    if not path:
        raise HarnessError(
            "the registry binary 'docker-registry' is missing: apt-get install -y docker-registry"
        )
    return path


class RegistryServer:
    def __init__(
        self,
        supervisor: Supervisor,
        workdir: Path,
        emulator: S3Emulator,
        bucket: str,
        root: str = "",
        user: str = "regvault",
        blob_descriptor_cache: str | None = None,
        tls: bool = False,
        auth: bool = True,
        journal: tuple[str, dict[str, str]] | None = None,
    ) -> None:
        self.supervisor = supervisor
        self.workdir = workdir
        self.user = user
        self.password = secrets.token_urlsafe(18)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.tls = tls
        self.scheme = "https" if tls else "http"
        if tls:
            self.cert_dir = workdir / "certs"
            self.cert_dir.mkdir(exist_ok=True)
            self_signed_certificate(self.cert_dir / "ca.crt", workdir / "tls.key")
        htpasswd_file = workdir / "htpasswd"
        htpasswd_file.write_text(htpasswd({user: self.password}))  # the setup's own htpasswd writer
        htpasswd_file.chmod(0o600)
        self.settings = RegistrySettings(
            bucket=bucket,
            region=REGION,
            root=root,
            listen=self.address,
            s3_endpoint=emulator.endpoint_url,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            chunk_size=5 * 1024 * 1024,
            # without auth (the bench's pull checks): no bcrypt check per request
            htpasswd_path=str(htpasswd_file) if auth else None,
            http_secret=secrets.token_hex(16),
            blob_descriptor_cache=blob_descriptor_cache,
            journal_url=journal[0] if journal else None,
            journal_headers=journal[1] if journal else None,
            tls_certificate=str(workdir / "certs" / "ca.crt") if tls else None,
            tls_key=str(workdir / "tls.key") if tls else None,
        )
        self.config_path = workdir / "registry.yml"
        self.config_path.write_text(render(self.settings))
        self.config_path.chmod(0o600)
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @staticmethod
    def env() -> dict[str, str]:
        env = dict(os.environ)
        # distribution 2.8.2 panics when AWS_CA_BUNDLE is set
        for name in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
            env.pop(name, None)
        return env

    def start(self) -> None:
        self.proc = self.supervisor.start(
            "registry", [registry_binary(), "serve", str(self.config_path)], env=self.env()
        )
        wait_for_http(
            f"{self.scheme}://{self.address}/v2/",
            lambda status: status == (401 if self.settings.htpasswd_path else 200),
            self.proc,
            "registry",
            lambda: self.supervisor.log_tail("registry"),
        )

    def restart(self) -> None:
        """Restart, e.g. to drop the in-memory blob-descriptor cache after an out-of-process GC."""
        if self.proc is not None:
            self.supervisor.stop(self.proc)
        self.start()

    def garbage_collect(self, *, delete_untagged: bool = False, dry_run: bool = False) -> str:
        argv = [registry_binary(), "garbage-collect"]
        if delete_untagged:
            argv.append("--delete-untagged")
        if dry_run:
            argv.append("--dry-run")
        argv.append(str(self.config_path))
        result = subprocess.run(
            argv, env=self.env(), capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            raise HarnessError(f"garbage-collect failed ({result.returncode}): {result.stderr[-2000:]}")
        return result.stdout + result.stderr
