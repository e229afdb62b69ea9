"""Parse image manifests and list what they reference.

Docker v2 schema2, Docker manifest list, OCI image manifest and OCI image index are read fully;
Docker schema1 (legacy) is recognised and reported as such. Anything else is a ``ManifestError`` with
the reason — never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from regvault.errors import InvalidInput, ManifestError
from regvault.storage.digest import Digest

DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

IMAGE_TYPES = frozenset({DOCKER_SCHEMA2, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_LIST, OCI_INDEX})
SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})

# distribution refuses manifests above 4 MiB (registry/handlers/manifests.go maxManifestBodySize)
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

SHORT_NAMES = {
    DOCKER_SCHEMA2: "docker-v2",
    DOCKER_LIST: "docker-list",
    OCI_MANIFEST: "oci-manifest",
    OCI_INDEX: "oci-index",
    DOCKER_SCHEMA1: "docker-v1",
    DOCKER_SCHEMA1_SIGNED: "docker-v1-signed",
}


@dataclass(frozen=True, slots=True)
class Descriptor:
    role: str  # "config" | "layer" | "manifest" (index child) | "subject"
    media_type: str
    digest: Digest
    size: int | None  # None only for schema1 layers, which carry no size
    platform: str | None = None  # "linux/arm64/v8" for index children
    foreign: bool = False  # has "urls": the blob lives elsewhere, not in this registry


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    kind: str  # "image" | "index" | "schema1"
    descriptors: tuple[Descriptor, ...]
    artifact_type: str | None = None

    @property
    def legacy(self) -> bool:
        return self.kind == "schema1"

    @property
    def config(self) -> Descriptor | None:
        return next((d for d in self.descriptors if d.role == "config"), None)

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.descriptors if d.role == "layer")

    @property
    def children(self) -> tuple[Descriptor, ...]:
        return tuple(d for d in self.descriptors if d.role == "manifest")

    @property
    def subject(self) -> Descriptor | None:
        return next((d for d in self.descriptors if d.role == "subject"), None)

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        """Config and layers stored in this registry (foreign layers excluded)."""
        return tuple(d for d in self.descriptors if d.role in ("config", "layer") and not d.foreign)


def short_media_type(media_type: str | None) -> str:
    if not media_type:
        return "?"
    return SHORT_NAMES.get(media_type, media_type)


def parse_manifest(body: bytes) -> Manifest:
    """Parse manifest bytes; raise ManifestError with a one-line reason when they are not one."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is {len(body)} bytes, above the registry's 4 MiB limit")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ManifestError(f"not JSON: {str(exc)[:120]}") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"not a JSON object but {type(doc).__name__}")
    version = doc.get("schemaVersion")
    media_type = doc.get("mediaType")
    if media_type is not None and not isinstance(media_type, str):
        raise ManifestError("mediaType is not a string")
    if isinstance(version, bool):
        raise ManifestError(f"unsupported schemaVersion {version!r}")
    if version == 1 or media_type in SCHEMA1_TYPES:
        return _parse_schema1(doc, body)
    if version != 2:
        raise ManifestError(f"unsupported schemaVersion {str(version)[:20]!r}")
    if media_type is None:
        # OCI allows omitting mediaType; decide by shape as distribution does.
        if "manifests" in doc and "config" not in doc:
            media_type = OCI_INDEX
        elif "config" in doc:
            media_type = OCI_MANIFEST
        else:
            raise ManifestError("no mediaType, and neither 'config' nor 'manifests'")
    artifact_type = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else None
    descriptors: list[Descriptor] = []
    if media_type in IMAGE_TYPES:
        config = doc.get("config")
        if not isinstance(config, dict):
            raise ManifestError("image manifest without a 'config' descriptor")
        descriptors.append(_descriptor(config, "config"))
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise ManifestError("'layers' is not a list")
        descriptors += [_descriptor(item, "layer") for item in layers]
        kind = "image"
    elif media_type in INDEX_TYPES:
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise ManifestError("index without a 'manifests' list")
        descriptors += [_descriptor(item, "manifest") for item in children]
        kind = "index"
    else:
        raise ManifestError(f"unknown manifest media type {media_type[:100]!r}")
    subject = doc.get("subject")
    if subject is not None:
        if not isinstance(subject, dict):
            raise ManifestError("'subject' is not a descriptor")
        descriptors.append(_descriptor(subject, "subject"))
    return Manifest(media_type, kind, tuple(descriptors), artifact_type)


def _descriptor(item: Any, role: str) -> Descriptor:
    if not isinstance(item, dict):
        raise ManifestError(f"{role} descriptor is not an object")
    media_type = item.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestError(f"{role} descriptor without a mediaType")
    try:
        digest = Digest.parse(item.get("digest"))  # type: ignore[arg-type]
    except InvalidInput as exc:
        raise ManifestError(f"{role} descriptor: {exc}") from None
    size = item.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{role} descriptor {digest.short} has no valid size")
    platform = None
    if isinstance(item.get("platform"), dict):
        p = item["platform"]
        platform = "/".join(str(p[k]) for k in ("os", "architecture", "variant") if isinstance(p.get(k), str))
    urls = item.get("urls")
    foreign = isinstance(urls, list) and len(urls) > 0
    return Descriptor(role, media_type, digest, size, platform, foreign)


def _parse_schema1(doc: dict[str, Any], body: bytes) -> Manifest:
    media_type = DOCKER_SCHEMA1_SIGNED if "signatures" in doc else DOCKER_SCHEMA1
    layers = []
    fs_layers = doc.get("fsLayers", [])
    if isinstance(fs_layers, list):
        for item in fs_layers:
            if isinstance(item, dict) and isinstance(item.get("blobSum"), str):
                try:
                    layers.append(
                        Descriptor(
                            "layer",
                            "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            Digest.parse(item["blobSum"]),
                            None,
                        )
                    )
                except InvalidInput as exc:
                    raise ManifestError(f"schema1 fsLayers: {exc}") from None
    # schema1 lists a layer once per history entry; keep each digest once.
    unique = tuple({d.digest: d for d in layers}.values())
    return Manifest(media_type, "schema1", unique)
