"""A second registry client, independent of skopeo: the OCI distribution API over plain HTTP (urllib).

It pushes what skopeo does not (an OCI 1.1 referrer: a manifest with ``subject`` and ``artifactType``,
pushed by digest), uploads blobs in chunks (POST, PATCH, PUT), and pulls a manifest and its blobs with
every digest checked. Loopback only, basic auth.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import urllib.error
import urllib.request
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


class DistributionError(Exception):
    pass


class DistributionClient:
    def __init__(
        self, address: str, user: str, password: str, scheme: str = "http", cafile: str | None = None
    ) -> None:
        if not address.startswith(("127.0.0.1:", "localhost:")):
            raise DistributionError(f"loopback registries only, not {address!r}")
        self.base = f"{scheme}://{address}"
        self.context = ssl.create_default_context(cafile=cafile) if scheme == "https" else None
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        url = path if path.startswith("http") else f"{self.base}{path}"
        if not url.startswith(self.base):
            raise DistributionError(f"refusing {url[:80]!r}: not the registry at {self.base}")
        request = urllib.request.Request(  # noqa: S310 - the loopback registry's http URL, checked above
            url, data=body, method=method, headers={"Authorization": self.auth, **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.context) as response:  # noqa: S310
                return int(response.status), dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), dict(exc.headers), exc.read()

    def push_blob(self, repository: str, data: bytes, chunk: int = 64 * 1024) -> str:
        """Chunked upload (POST, PATCH per chunk, PUT with the digest); returns the digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, headers, _ = self._call("POST", f"/v2/{repository}/blobs/uploads/")
        if status != 202:
            raise DistributionError(f"starting an upload to {repository} answered {status}")
        location = headers["Location"]
        for offset in range(0, len(data), chunk):
            part = data[offset : offset + chunk]
            status, headers, _ = self._call(
                "PATCH",
                self._absolute(location),
                part,
                {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(part) - 1}",
                },
            )
            if status != 202:
                raise DistributionError(f"uploading a chunk to {repository} answered {status}")
            location = headers["Location"]
        separator = "&" if "?" in location else "?"
        status, _, body = self._call("PUT", self._absolute(location) + f"{separator}digest={digest}", b"")
        if status != 201:
            raise DistributionError(f"committing {digest} to {repository} answered {status}: {body[:300]!r}")
        return digest

    def _absolute(self, location: str) -> str:
        return location if location.startswith("http") else f"{self.base}{location}"

    def push_manifest(
        self, repository: str, reference: str, body: bytes, media_type: str = OCI_MANIFEST
    ) -> str:
        status, headers, answer = self._call(
            "PUT", f"/v2/{repository}/manifests/{reference}", body, {"Content-Type": media_type}
        )
        if status != 201:
            raise DistributionError(
                f"PUT manifest {repository}:{reference} answered {status}: {answer[:300]!r}"
            )
        return str(headers.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest())

    def push_referrer(
        self, repository: str, subject: dict[str, Any], payload: bytes, artifact_type: str
    ) -> str:
        """An OCI 1.1 artifact about ``subject`` (a signature, an SBOM), pushed by digest, untagged."""
        empty = self.push_blob(repository, b"{}")
        layer = self.push_blob(repository, payload)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": layer, "size": len(payload)}],
            "subject": subject,
        }
        body = json.dumps(manifest).encode()
        return self.push_manifest(repository, "sha256:" + hashlib.sha256(body).hexdigest(), body)

    def pull(self, repository: str, reference: str) -> dict[str, Any]:
        """GET the manifest and every blob it names, each digest checked; returns the manifest."""
        accept = ", ".join(
            [
                OCI_MANIFEST,
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ]
        )
        status, _, body = self._call(
            "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": accept}
        )
        if status != 200:
            raise DistributionError(f"GET manifest {repository}:{reference} answered {status}")
        manifest = json.loads(body)
        if reference.startswith("sha256:") and "sha256:" + hashlib.sha256(body).hexdigest() != reference:
            raise DistributionError(f"{repository}@{reference}: the manifest does not hash to its digest")
        for child in manifest.get("manifests", []):
            self.pull(repository, child["digest"])
        for descriptor in [manifest.get("config"), *manifest.get("layers", [])]:
            if descriptor:
                self._blob(repository, descriptor["digest"])
        return dict(manifest)

    def delete_manifest(self, repository: str, digest: str) -> int:
        """``DELETE /v2/<repository>/manifests/<digest>``: the HTTP status."""
        status, _, _ = self._call("DELETE", f"/v2/{repository}/manifests/{digest}")
        return status

    def digest_of(self, repository: str, tag: str) -> str | None:
        """What ``repository:tag`` points at now (HEAD of the manifest), None when the tag is unknown."""
        accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
        status, headers, _ = self._call(
            "HEAD", f"/v2/{repository}/manifests/{tag}", headers={"Accept": accept}
        )
        if status == 404:
            return None
        if status != 200:
            raise DistributionError(f"HEAD manifest {repository}:{tag} answered {status}")
        return headers.get("Docker-Content-Digest")

    def catalog(self) -> list[str]:
        status, _, body = self._call("GET", "/v2/_catalog?n=1000")
        if status != 200:
            raise DistributionError(f"GET /v2/_catalog answered {status}")
        return list(json.loads(body).get("repositories") or [])

    def tags(self, repository: str) -> list[str]:
        status, _, body = self._call("GET", f"/v2/{repository}/tags/list")
        if status == 404:
            return []
        if status != 200:
            raise DistributionError(f"GET tags of {repository} answered {status}")
        return list(json.loads(body).get("tags") or [])

    def _blob(self, repository: str, digest: str) -> None:
        status, _, data = self._call("GET", f"/v2/{repository}/blobs/{digest}")
        if status != 200:
            raise DistributionError(f"GET blob {repository}@{digest} answered {status}")
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise DistributionError(f"{repository}@{digest}: the blob does not hash to its digest")
