"""Test images built on the fly as OCI image layouts, pushed and pulled with real skopeo.

Layers are gzip'd tars of seeded random bytes, so images are reproducible, share base layers when
asked, and do not compress away (a 6 MiB layer stays above the driver's 5 MiB chunk size).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.processes import HarnessError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    diff_id: str


@dataclass
class BuiltImage:
    """What was written into the layout: the descriptor tagged, and every blob's digest and size."""

    ref: str
    descriptor: dict[str, Any]
    manifests: list[dict[str, Any]] = field(default_factory=list)  # parsed manifest docs
    blobs: dict[str, int] = field(default_factory=dict)  # digest -> size (configs and layers)

    @property
    def digest(self) -> str:
        return str(self.descriptor["digest"])

    @property
    def is_index(self) -> bool:
        return bool(self.descriptor["mediaType"] == OCI_INDEX)


class OciLayout:
    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        self.refs: list[dict[str, Any]] = []
        self._save()

    def add_blob(self, data: bytes) -> tuple[str, int]:
        hexdigest = hashlib.sha256(data).hexdigest()
        target = self.path / "blobs" / "sha256" / hexdigest
        if not target.exists():
            target.write_bytes(data)
        return f"sha256:{hexdigest}", len(data)

    def layer(self, seed: str, size: int = 2048) -> Layer:
        rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
        payload = rng.randbytes(size)
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            info = tarfile.TarInfo(f"data/{hashlib.sha256(seed.encode()).hexdigest()[:16]}")
            info.size = len(payload)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(payload))
        uncompressed = raw.getvalue()
        compressed = gzip.compress(uncompressed, compresslevel=1, mtime=0)
        digest, length = self.add_blob(compressed)
        return Layer(digest, length, "sha256:" + hashlib.sha256(uncompressed).hexdigest())

    def image(self, layers: list[Layer], arch: str = "amd64", label: str = "") -> BuiltImage:
        config = {
            "architecture": arch,
            "os": "linux",
            "config": {"Labels": {"regvault.test": label}},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        }
        config_digest, config_size = self.add_blob(json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": OCI_LAYER, "digest": x.digest, "size": x.size} for x in layers],
        }
        digest, size = self.add_blob(json.dumps(manifest).encode())
        blobs = {config_digest: config_size, **{x.digest: x.size for x in layers}}
        descriptor = {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": size,
            "platform": {"architecture": arch, "os": "linux"},
        }
        return BuiltImage("", descriptor, [manifest], blobs)

    def index(self, children: list[BuiltImage]) -> BuiltImage:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [child.descriptor for child in children],
        }
        digest, size = self.add_blob(json.dumps(doc).encode())
        built = BuiltImage("", {"mediaType": OCI_INDEX, "digest": digest, "size": size}, [doc])
        for child in children:
            built.manifests += child.manifests
            built.blobs.update(child.blobs)
        return built

    def tag(self, ref: str, image: BuiltImage) -> BuiltImage:
        descriptor = {k: v for k, v in image.descriptor.items() if k != "platform"}
        descriptor["annotations"] = {REF_NAME: ref}
        self.refs = [r for r in self.refs if r["annotations"][REF_NAME] != ref] + [descriptor]
        self._save()
        image.ref = ref
        return image

    def _save(self) -> None:
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": self.refs}))


class Skopeo:
    """Real skopeo against the local registry (plain HTTP on loopback, basic auth)."""

    def __init__(self, workdir: Path, registry: str, user: str, password: str) -> None:
        if not shutil.which("skopeo"):
            raise HarnessError("skopeo is missing: apt-get install -y skopeo")
        self.workdir = workdir
        self.registry = registry
        self.creds = f"{user}:{password}"
        self.policy = workdir / "policy.json"
        self.policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}')

    def _run(self, argv: list[str], timeout: float = 300) -> str:
        result = subprocess.run(
            ["skopeo", "--policy", str(self.policy), *argv],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            shown = " ".join(argv).replace(self.creds, "***")
            raise HarnessError(f"skopeo {shown} failed: {result.stderr.strip()[-1500:]}")
        return result.stdout

    def push(
        self,
        layout: OciLayout,
        ref: str,
        destination: str,
        *,
        all_images: bool = False,
        docker_v2s2: bool = False,
    ) -> str:
        """Copy ``oci:<layout>:<ref>`` to ``<registry>/<destination>``; return the pushed digest."""
        digest_file = self.workdir / "pushed.digest"
        argv = [
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            self.creds,
            "--digestfile",
            str(digest_file),
        ]
        if all_images:
            argv.append("--all")
        if docker_v2s2:
            argv += ["--format", "v2s2"]
        argv += [f"oci:{layout.path}:{ref}", f"docker://{self.registry}/{destination}"]
        self._run(argv)
        return digest_file.read_text().strip()

    def inspect_raw(self, reference: str) -> bytes:
        """The manifest bytes the registry serves for ``repo:tag`` or ``repo@digest``."""
        out = subprocess.run(
            [
                "skopeo",
                "--policy",
                str(self.policy),
                "inspect",
                "--raw",
                "--tls-verify=false",
                "--creds",
                self.creds,
                f"docker://{self.registry}/{reference}",
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise HarnessError(
                f"skopeo inspect {reference} failed: {out.stderr.decode(errors='replace')[-800:]}"
            )
        return out.stdout

    def pull(self, reference: str, target: Path, *, all_images: bool = False) -> None:
        """Pull into an OCI layout; skopeo verifies every blob's digest as it copies."""
        argv = ["copy", "--src-tls-verify=false", "--src-creds", self.creds]
        if all_images:
            argv.append("--all")
        argv += [f"docker://{self.registry}/{reference}", f"oci:{target}:pulled"]
        self._run(argv)

    def list_tags(self, repository: str) -> list[str]:
        out = self._run(
            [
                "list-tags",
                "--tls-verify=false",
                "--creds",
                self.creds,
                f"docker://{self.registry}/{repository}",
            ]
        )
        return list(json.loads(out).get("Tags") or [])
