"""Images without internet, under their real names: the stand-ins an emulated instance pulls.

The launch script pulls ``public.ecr.aws/docker/library/registry:2`` (or ``:3``) and runs
``public.ecr.aws/aws-cli/aws-cli:<tag>``. Here both are built from files on this machine and written
straight into the storage of a local "ECR Public" (Debian's ``docker-registry`` with filesystem
storage, TLS for ``public.ecr.aws``), so the script's own ``docker pull`` / ``docker run`` lines run
unchanged:

- ``registry:2``: Debian's ``/usr/bin/docker-registry`` (distribution 2.8.2) and its libc, as
  ``/usr/bin/registry`` with the image's default config path ``/etc/docker/registry/config.yml``;
- ``registry:3``: distribution v3.1.1 (``../shared/bin/registry-v3.1.1``, static), config path
  ``/etc/distribution/config.yml``;
- ``aws-cli``: the host's Debian ``python3.11`` and stdlib with pip's ``awscli`` v1 (its botocore
  models gzipped), ``ENTRYPOINT ["python3.11", "-m", "awscli"]``.

How the aws-cli stand-in reaches the emulator: the script runs it with no environment and no mounts
(on EC2 it finds the region's endpoint and the instance role through IMDS). Here each instance gets
its own tag of that image whose config carries ``AWS_ENDPOINT_URL`` (the emulator), the emulator's
fixed keys and ``AWS_EC2_METADATA_DISABLED=true`` in ``Env``: a new config blob and manifest over the
same layer, written in milliseconds (``publish_aws_cli``).

Both registry images trust the harness CA (``/etc/ssl/certs/ca-certificates.crt``), which signs the
emulator's TLS listener: on AWS they trust Amazon's CAs the same way.

The layers are built once and cached (``cache_dir()``: under the venv, keyed by what they are made
of); each ECR stand-in copies the cached storage.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT
from harness.processes import HarnessError
from regvault.storage.digest import Digest
from regvault.storage.layout import (
    BlobData,
    LayerLink,
    RegistryLayout,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
)

AWSCLI_VERSION = "1.46.2"  # pip's awscli (v1): the stand-in for the aws-cli v2 image
AWS_CLI_REPOSITORY = "aws-cli/aws-cli"
AWS_CLI_TAG = "2.22.0"  # the launch document's default AwsCliImage tag
REGISTRY_REPOSITORY = "docker/library/registry"
V3_BINARY = ROOT.parent / "shared" / "bin" / "registry-v3.1.1"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
_BUILDER_VERSION = "3"  # bump when what an image holds changes


def cache_dir() -> Path:
    return Path(os.environ.get("REGVAULT_IMAGE_CACHE") or ROOT / ".venv" / "regvault-images")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _Rootfs:
    """A root filesystem written as a tar, files added with the shared libraries ldd names."""

    def __init__(self) -> None:
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
        self.seen: set[str] = set()

    def _dirs(self, path: str) -> None:
        parts = Path(path).parent.parts[1:]
        for i in range(1, len(parts) + 1):
            directory = "/".join(parts[:i])
            if directory not in self.seen:
                self.seen.add(directory)
                info = tarfile.TarInfo(directory)
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                self.tar.addfile(info)

    def data(self, path: str, content: bytes, mode: int = 0o644) -> None:
        if path.lstrip("/") in self.seen:
            return
        self._dirs(path)
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size, info.mode = len(content), mode
        self.tar.addfile(info, io.BytesIO(content))
        self.seen.add(path.lstrip("/"))

    def directory(self, path: str, mode: int = 0o755) -> None:
        self._dirs(path + "/x")
        self.tar.getmember(path.lstrip("/")).mode = mode

    def symlink(self, path: str, target: str) -> None:
        self._dirs(path)
        info = tarfile.TarInfo(path.lstrip("/"))
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.tar.addfile(info)

    def file(self, source: str | Path, path: str | None = None, with_libraries: bool = True) -> None:
        source = Path(source)
        self.data(path or str(source), source.read_bytes(), 0o755 if os.access(source, os.X_OK) else 0o644)
        if not with_libraries:
            return
        out = subprocess.run(["ldd", str(source)], capture_output=True, text=True, check=False).stdout
        for word in out.split():
            if word.startswith("/") and ".so" in word and word.lstrip("/") not in self.seen:
                self.data(word, Path(word).read_bytes(), 0o755)

    def tree(self, source: Path, path: str, skip: tuple[str, ...] = ()) -> None:
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames[:] = [d for d in dirnames if d not in skip and d != "__pycache__"]
            for name in filenames:
                full = Path(dirpath) / name
                relative = full.relative_to(source)
                target = f"{path}/{relative}"
                if full.is_symlink() or not full.is_file():
                    continue
                body = full.read_bytes()
                if full.suffix == ".json" and "/botocore/data/" in str(full):
                    if name.startswith("examples-"):
                        continue
                    # botocore reads .json.gz as well as .json: 125 MB of models become ~12 MB
                    target, body = target + ".gz", gzip.compress(body, 1)
                self.data(target, body, 0o755 if os.access(full, os.X_OK) else 0o644)

    def layer(self) -> tuple[bytes, str]:
        """(gzip'd layer, its diff_id)."""
        self.tar.close()
        raw = self.buffer.getvalue()
        return gzip.compress(raw, 1, mtime=0), f"sha256:{hashlib.sha256(raw).hexdigest()}"


@dataclass(frozen=True)
class StoredLayer:
    digest: str
    size: int
    diff_id: str


@dataclass(frozen=True)
class ImageSpec:
    repository: str
    tag: str
    entrypoint: list[str]
    cmd: list[str]
    env: list[str]


class RegistryStorage:
    """Writes images into a ``docker-registry`` filesystem storage, with regvault's own layout (the
    filesystem driver keeps the same keys as the S3 driver, under ``rootdirectory``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = RegistryLayout("")

    def _write(self, key: str, body: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(body)
        tmp.replace(path)  # never modify a file in place: copies of the storage may share it

    def blob(self, repository: str, body: bytes) -> Digest:
        digest = Digest.parse(f"sha256:{hashlib.sha256(body).hexdigest()}")
        if not (self.root / self.layout.key(BlobData(digest))).exists():
            self._write(self.layout.key(BlobData(digest)), body)
        self._write(self.layout.key(LayerLink(repository, digest)), str(digest).encode())
        return digest

    def layer(self, repository: str, layer: tuple[bytes, str]) -> StoredLayer:
        """Store a (gzip'd layer, diff_id) as a blob of ``repository``."""
        blob, diff_id = layer
        return StoredLayer(str(self.blob(repository, blob)), len(blob), diff_id)

    def image(self, spec: ImageSpec, layer: StoredLayer) -> str:
        """A config and a schema2 manifest over a stored layer, and the tag pointed at it; its digest."""
        diff_id = layer.diff_id
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Entrypoint": spec.entrypoint, "Cmd": spec.cmd, "Env": spec.env},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            },
            sort_keys=True,
        ).encode()
        config_digest = self.blob(spec.repository, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": str(config_digest)},
                "layers": [{"mediaType": DOCKER_LAYER, "size": layer.size, "digest": layer.digest}],
            },
            indent=3,
        ).encode()
        digest = Digest.parse(f"sha256:{hashlib.sha256(manifest).hexdigest()}")
        self._write(self.layout.key(BlobData(digest)), manifest)
        link = str(digest).encode()
        self._write(self.layout.key(RevisionLink(spec.repository, digest)), link)
        self._write(self.layout.key(TagIndexLink(spec.repository, spec.tag, digest)), link)
        self._write(self.layout.key(TagCurrentLink(spec.repository, spec.tag)), link)
        return str(digest)

    def layer_of(self, repository: str, tag: str) -> StoredLayer:
        """The layer of a single-layer image written here (read from its manifest and config only)."""
        link = (self.root / self.layout.key(TagCurrentLink(repository, tag))).read_text()
        manifest = json.loads((self.root / self.layout.key(BlobData(Digest.parse(link)))).read_bytes())
        config = json.loads(
            (self.root / self.layout.key(BlobData(Digest.parse(manifest["config"]["digest"])))).read_bytes()
        )
        [layer] = manifest["layers"]
        return StoredLayer(layer["digest"], int(layer["size"]), config["rootfs"]["diff_ids"][0])


def _registry_layer(binary: Path, config_path: str, ca_pem: str) -> tuple[bytes, str]:
    fs = _Rootfs()
    fs.file(binary, "/usr/bin/registry")
    fs.data(config_path, (ROOT / "tools" / "harness" / "stand_in_registry.yml").read_bytes())
    fs.data("/etc/ssl/certs/ca-certificates.crt", ca_pem.encode())
    fs.directory("/var/lib/registry")
    fs.directory("/tmp", 0o1777)  # noqa: S108 - the image's own /tmp
    return fs.layer()


def _aws_cli_layer(site: Path) -> tuple[bytes, str]:
    fs = _Rootfs()
    python = Path("/usr/bin/python3.11")
    if not python.exists():
        raise HarnessError("the aws-cli stand-in needs Debian's python3.11 (/usr/bin/python3.11)")
    fs.file(python)
    fs.symlink("/usr/bin/python3", "python3.11")
    stdlib = Path("/usr/lib/python3.11")
    skip = (
        "test",
        "idlelib",
        "tkinter",
        "ensurepip",
        "lib2to3",
        "pydoc_data",
        "site-packages",
        "dist-packages",
    )
    fs.tree(stdlib, "/usr/lib/python3.11", skip=(*skip, "config-3.11-x86_64-linux-gnu"))
    for module in sorted((stdlib / "lib-dynload").glob("*.so")):
        fs.file(module)
    fs.tree(site, "/usr/local/lib/python3.11/dist-packages", skip=("bin", "examples"))
    fs.data("/etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    fs.directory("/root", 0o700)
    fs.directory("/tmp", 0o1777)  # noqa: S108 - the image's own /tmp
    return fs.layer()


def _cache_key(ca_pem: str) -> str:
    parts = [_BUILDER_VERSION, AWSCLI_VERSION, ca_pem, _sha256_file(Path("/usr/bin/python3.11"))]
    for binary in (shutil.which("docker-registry"), V3_BINARY):
        parts.append(_sha256_file(Path(binary)) if binary and Path(binary).exists() else "-")
    parts.append((ROOT / "tools" / "harness" / "stand_in_registry.yml").read_text())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def build_storage(ca_pem: str, progress: bool = False) -> Path:
    """The ECR Public stand-in's storage with registry:2, registry:3 (when its binary is here) and
    the aws-cli base image, built once per cache key (~20 s) and reused."""
    key = _cache_key(ca_pem)
    done = cache_dir() / f"ecr-{key}"
    if (done / "complete").exists():
        return done
    work = cache_dir() / f"ecr-{key}.building-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if progress:
        print("building the stand-in images (once; cached under", cache_dir(), ")", file=sys.stderr)
    storage = RegistryStorage(work)
    registry2 = shutil.which("docker-registry")
    if not registry2:
        raise HarnessError(
            "the registry:2 stand-in needs Debian's docker-registry: apt-get install -y docker-registry"
        )
    spec = {
        "entrypoint": ["/usr/bin/registry"],
        "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"],
    }
    storage.image(
        ImageSpec(REGISTRY_REPOSITORY, "2", cmd=["serve", "/etc/docker/registry/config.yml"], **spec),
        storage.layer(
            REGISTRY_REPOSITORY, _registry_layer(Path(registry2), "/etc/docker/registry/config.yml", ca_pem)
        ),
    )
    if V3_BINARY.exists():
        storage.image(
            ImageSpec(REGISTRY_REPOSITORY, "3", cmd=["serve", "/etc/distribution/config.yml"], **spec),
            storage.layer(
                REGISTRY_REPOSITORY, _registry_layer(V3_BINARY, "/etc/distribution/config.yml", ca_pem)
            ),
        )
    site = work.parent / f"awscli-{AWSCLI_VERSION}"
    if not (site / "awscli").exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(site),
             f"awscli=={AWSCLI_VERSION}"],
            check=True,
        )  # fmt: skip
    storage.image(ImageSpec(AWS_CLI_REPOSITORY, "base", ["/usr/bin/python3.11", "-m", "awscli"], [], []),
                  storage.layer(AWS_CLI_REPOSITORY, _aws_cli_layer(site)))  # fmt: skip
    (work / "complete").write_text(key)
    shutil.rmtree(done, ignore_errors=True)
    work.rename(done)
    return done


def publish_aws_cli(storage_root: Path, tag: str, endpoint_url: str, access_key: str, secret_key: str) -> str:
    """A tag of the aws-cli stand-in whose environment reaches the emulator (see the module's doc)."""
    storage = RegistryStorage(storage_root)
    env = [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin",
        f"AWS_ENDPOINT_URL={endpoint_url}",
        f"AWS_ACCESS_KEY_ID={access_key}",
        f"AWS_SECRET_ACCESS_KEY={secret_key}",
        "AWS_EC2_METADATA_DISABLED=true",
    ]
    spec = ImageSpec(AWS_CLI_REPOSITORY, tag, ["/usr/bin/python3.11", "-m", "awscli"], [], env)
    return storage.image(spec, storage.layer_of(AWS_CLI_REPOSITORY, "base"))
