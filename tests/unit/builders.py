"""Builders for unit tests: registry-shaped keys written through the layout module."""

from typing import Any

from regvault.digest import Digest
from regvault.layout import RegistryLayout


def digest_of(label: str) -> Digest:
    return Digest.of(label.encode())


class RegistryWriter:
    """Writes keys the way distribution does (same shapes, same link bodies), for unit tests."""

    def __init__(self, s3: Any, bucket: str, root: str = "") -> None:
        self.s3, self.bucket, self.layout = s3, bucket, RegistryLayout(root)

    def put(self, entity: Any, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.layout.key(entity), Body=body)

    def delete(self, entity: Any) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.layout.key(entity))


def oci_manifest(config: Digest, layers: list[Digest], sizes: dict[Digest, int] | None = None) -> bytes:
    import json

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(config),
                "size": (sizes or {}).get(config, 2),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": str(x),
                    "size": (sizes or {}).get(x, 3),
                }
                for x in layers
            ],
        }
    ).encode()


def push_image(w: RegistryWriter, repository: str, tag: str, label: str) -> Digest:
    """Write what distribution writes for a push of a one-layer image; return the manifest digest."""
    from regvault.layout import BlobData, LayerLink, RevisionLink, TagCurrentLink, TagIndexLink

    config, layer = f"cfg-{label}".encode(), f"layer-{label}".encode()
    for blob in (config, layer):
        w.put(BlobData(Digest.of(blob)), blob)
        w.put(LayerLink(repository, Digest.of(blob)), Digest.of(blob).link_body())
    sizes = {Digest.of(config): len(config), Digest.of(layer): len(layer)}
    manifest = oci_manifest(Digest.of(config), [Digest.of(layer)], sizes)
    digest = Digest.of(manifest)
    w.put(BlobData(digest), manifest)
    w.put(RevisionLink(repository, digest), digest.link_body())
    w.put(TagIndexLink(repository, tag, digest), digest.link_body())
    w.put(TagCurrentLink(repository, tag), digest.link_body())
    return digest
