"""Registries of any size written straight into the S3 emulator, as distribution 2.8 + skopeo write them.

``RegistrySimulator`` replays, per registry operation, the exact S3 writes the real registry makes
(observed on Debian's docker-registry 2.8 over the emulator, pushed with Debian's skopeo; the test
``tests/integration/test_generator_fidelity.py`` keeps it honest):

- **push** (skopeo copy): per config/layer blob not yet in the repository — a *mount* (one
  ``_layers`` link version) when another repository already links the live blob, otherwise an
  *upload*: ``_uploads/<uuid>/`` gets ``startedat`` (1 version + delete marker), ``data`` (1 + marker),
  ``hashstates/sha256/0`` and ``hashstates/sha256/<size>`` (2 versions + marker each), then the blob's
  ``data`` (only if the blob is not live already) and the ``_layers`` link. Per manifest PUT: the
  blob's ``data`` (if not live), a new version of the revision link, and for a tag a new version of
  ``tags/<tag>/current/link`` and of ``tags/<tag>/index/<digest>/link``. An index's children are PUT
  by digest first (their blobs, their blob data, their revision links).
- **delete** (``DELETE /v2/<repo>/manifests/<digest>``): a delete marker on the revision link and, for
  every tag whose current link names the digest, on every live key below that tag.
- **garbage-collect** (``--delete-untagged`` optional): marks every live revision and its references
  (an index marks its children's digests only — distribution #3004: with ``--delete-untagged`` the
  children's own revisions, untagged, are deleted and their layers swept); deletes the revision link
  and tag index links of untagged manifests; a delete marker on every unmarked blob's ``data``.

Blob contents are small (the audit and GC never read layer bytes); the hash-state files carry the
right size, not Go's serialized hash state. Multi-chunk (> 5 MiB) uploads are not generated.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import random
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from harness.images import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST
from regvault.storage.digest import Digest
from regvault.storage.layout import (
    BlobData,
    LayerLink,
    RegistryLayout,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
    UploadObject,
)

HASHSTATE_SIZE = 108  # Go's marshaled sha256 state: "sha\x03" + 8 words + 64-byte block + length


@dataclass(frozen=True)
class Blob:
    data: bytes
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", "sha256:" + hashlib.sha256(self.data).hexdigest())


@dataclass(frozen=True)
class Image:
    """A manifest (image or index) with what it references: blobs for an image, children for an index."""

    manifest: Blob
    blobs: tuple[Blob, ...] = ()
    children: tuple[Image, ...] = ()

    @property
    def digest(self) -> str:
        return self.manifest.digest

    def references(self) -> list[str]:
        """What garbage-collect marks for this manifest (``Manifest.References()``)."""
        if self.children:
            return [child.digest for child in self.children]
        return [blob.digest for blob in self.blobs]


@dataclass(frozen=True)
class Op:
    key: str
    body: bytes | None  # None: a delete marker
    at: float  # epoch seconds


class RegistrySimulator:
    """The registry's state and the S3 writes of each operation, appended to ``self.ops``."""

    def __init__(self, root: str = "", start: datetime | None = None) -> None:
        self.layout = RegistryLayout(root)
        self.clock = (start or datetime.now(UTC) - timedelta(days=30)).timestamp()
        self.ops: list[Op] = []
        self.live_blobs: set[str] = set()
        self.links: dict[str, set[str]] = {}  # repo -> live _layers links
        self.revisions: dict[str, set[str]] = {}  # repo -> live revision links
        self.tags: dict[str, dict[str, str]] = {}  # repo -> tag -> current digest
        self.tag_index: dict[str, dict[str, set[str]]] = {}  # repo -> tag -> live index links
        self.manifests: dict[str, Image] = {}
        self.referrers: list[tuple[str, str, str]] = []  # (repo, referrer digest, subject digest)

    # --- writes ------------------------------------------------------------------------------------

    def _put(self, entity: Any, body: bytes) -> None:
        self.clock += 0.001
        self.ops.append(Op(self.layout.key(entity), body, self.clock))

    def _delete(self, entity: Any) -> None:
        self.clock += 0.001
        self.ops.append(Op(self.layout.key(entity), None, self.clock))

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    # --- push ----------------------------------------------------------------------------------------

    def _blob_into(self, repo: str, blob: Blob) -> None:
        linked = self.links.setdefault(repo, set())
        if blob.digest in linked and blob.digest in self.live_blobs:
            return  # HEAD /v2/<repo>/blobs/<digest>: 200, nothing written
        digest = Digest.parse(blob.digest)
        mountable = blob.digest in self.live_blobs and any(
            blob.digest in links for other, links in self.links.items() if other != repo
        )
        if not mountable:
            self._upload(repo, blob)
        linked.add(blob.digest)
        self._put(LayerLink(repo, digest), digest.link_body())

    def _upload(self, repo: str, blob: Blob) -> None:
        upload = str(uuid.UUID(int=random.getrandbits(128), version=4))

        def obj(path: str) -> UploadObject:
            return UploadObject(repo, upload, path)

        started = datetime.fromtimestamp(self.clock, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
        state = b"sha\x03" + bytes(HASHSTATE_SIZE - 4)
        end = f"hashstates/sha256/{len(blob.data)}"
        self._put(obj("startedat"), started)
        self._put(obj("hashstates/sha256/0"), state)
        self._put(obj("hashstates/sha256/0"), state)
        self._put(obj("data"), blob.data)
        self._put(obj(end), state)
        self._put(obj(end), state)
        if blob.digest not in self.live_blobs:  # commit: move data into place unless already there
            self._put(BlobData(Digest.parse(blob.digest)), blob.data)
            self.live_blobs.add(blob.digest)
        for path in ("data", "startedat", "hashstates/sha256/0", end):
            self._delete(obj(path))

    def _put_manifest(self, repo: str, image: Image, tag: str | None) -> None:
        digest = Digest.parse(image.digest)
        self.manifests[image.digest] = image
        if image.digest not in self.live_blobs:
            self._put(BlobData(digest), image.manifest.data)
            self.live_blobs.add(image.digest)
        self._put(RevisionLink(repo, digest), digest.link_body())
        self.revisions.setdefault(repo, set()).add(image.digest)
        if tag is not None:
            self._put(TagCurrentLink(repo, tag), digest.link_body())
            self._put(TagIndexLink(repo, tag, digest), digest.link_body())
            self.tags.setdefault(repo, {})[tag] = image.digest
            self.tag_index.setdefault(repo, {}).setdefault(tag, set()).add(image.digest)

    def push(self, repo: str, tag: str, image: Image) -> None:
        """``skopeo copy [--all] oci:… docker://registry/<repo>:<tag>``."""
        for child in image.children:
            for blob in child.blobs:
                self._blob_into(repo, blob)
            self._put_manifest(repo, child, None)
        for blob in image.blobs:
            self._blob_into(repo, blob)
        self._put_manifest(repo, image, tag)

    def push_referrer(self, repo: str, artifact: Image) -> None:
        """An OCI 1.1 referrer (a signature, an SBOM: a manifest with ``subject``) PUT by digest,
        untagged, as the second client (``harness.distclient.push_referrer``) pushes one."""
        for blob in artifact.blobs:
            self._blob_into(repo, blob)
        self._put_manifest(repo, artifact, None)
        subject = json.loads(artifact.manifest.data)["subject"]["digest"]
        self.referrers.append((repo, artifact.digest, subject))

    def tagged(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The live tags (repo, tag), and the referrers (repo, digest) about a manifest a live tag reaches
        (itself or an index's child): what any GC must leave pullable."""
        tags = sorted((repo, tag) for repo, by_tag in self.tags.items() for tag in by_tag)
        reached: set[tuple[str, str]] = set()
        for repo, by_tag in self.tags.items():
            for digest in by_tag.values():
                reached.add((repo, digest))
                reached.update((repo, child.digest) for child in self.manifests[digest].children)
        referrers = sorted(
            (repo, digest)
            for repo, digest, subject in self.referrers
            if (repo, subject) in reached and digest in self.revisions.get(repo, set())
        )
        return tags, referrers

    # --- delete and garbage-collect ------------------------------------------------------------------

    def _untag(self, repo: str, tag: str) -> None:
        self._delete(TagCurrentLink(repo, tag))
        for digest in sorted(self.tag_index[repo].pop(tag, set())):
            self._delete(TagIndexLink(repo, tag, Digest.parse(digest)))
        del self.tags[repo][tag]

    def delete_manifest(self, repo: str, digest: str) -> None:
        """``DELETE /v2/<repo>/manifests/<digest>``."""
        if digest not in self.revisions.get(repo, set()):
            raise KeyError(f"{repo}@{digest} is not a live revision")
        self._delete(RevisionLink(repo, Digest.parse(digest)))
        self.revisions[repo].discard(digest)
        for tag, current in sorted(self.tags.get(repo, {}).items()):
            if current == digest:
                self._untag(repo, tag)

    def garbage_collect(self, delete_untagged: bool = False) -> tuple[int, int]:
        """``docker-registry garbage-collect [--delete-untagged]``; (manifests, blobs) deleted."""
        marked: set[str] = set()
        doomed: list[tuple[str, str]] = []
        for repo in sorted(self.revisions):
            tagged = set(self.tags.get(repo, {}).values())
            for digest in sorted(self.revisions[repo]):
                if delete_untagged and digest not in tagged:
                    doomed.append((repo, digest))
                    continue
                marked.add(digest)
                marked.update(self.manifests[digest].references())
        for repo, digest in doomed:
            for tag in sorted(self.tag_index.get(repo, {})):
                if digest in self.tag_index[repo][tag]:
                    self._delete(TagIndexLink(repo, tag, Digest.parse(digest)))
                    self.tag_index[repo][tag].discard(digest)
            self._delete(RevisionLink(repo, Digest.parse(digest)))
            self.revisions[repo].discard(digest)
        swept = sorted(self.live_blobs - marked)
        for digest in swept:
            self._delete(BlobData(Digest.parse(digest)))
            self.live_blobs.discard(digest)
        return len(doomed), len(swept)


# --- images for the synthetic workload ---------------------------------------------------------------


def oci_image(rng: random.Random, layers: list[Blob], arch: str = "amd64", label: str = "") -> Image:
    """An OCI image manifest over ``layers`` with a fresh config (same JSON shapes skopeo pushes)."""
    import json

    config = Blob(
        json.dumps(
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Labels": {"regvault.bench": label, "n": rng.getrandbits(48)}},
                "rootfs": {
                    "type": "layers",
                    "diff_ids": ["sha256:" + rng.randbytes(32).hex() for _ in layers],
                },
            },
            sort_keys=True,
        ).encode()
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": len(config.data)},
        "layers": [{"mediaType": OCI_LAYER, "digest": x.digest, "size": len(x.data)} for x in layers],
    }
    return Image(Blob(json.dumps(manifest).encode()), tuple([*layers, config]))


def oci_referrer(rng: random.Random, subject: Image, artifact_type: str) -> Image:
    """An OCI 1.1 artifact about ``subject``: empty config, one payload layer, ``subject`` set."""
    import json

    empty, payload = Blob(b"{}"), Blob(rng.randbytes(rng.randint(64, 256)))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest, "size": 2},
        "layers": [
            {"mediaType": "application/octet-stream", "digest": payload.digest, "size": len(payload.data)}
        ],
        "subject": {"mediaType": OCI_MANIFEST, "digest": subject.digest, "size": len(subject.manifest.data)},
    }
    return Image(Blob(json.dumps(manifest).encode()), (payload, empty))


def oci_index(children: list[tuple[Image, str]]) -> Image:
    import json

    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": child.digest,
                "size": len(child.manifest.data),
                "platform": {"architecture": arch, "os": "linux"},
            }
            for child, arch in children
        ],
    }
    return Image(Blob(json.dumps(doc).encode()), (), tuple(child for child, _ in children))


@dataclass
class Workload:
    """What the synthetic history did (the bench picks restore targets from it)."""

    versions: int
    pushes: int
    indexes: int
    deletes: int
    collections: int
    repositories: list[str]
    midpoint: float  # epoch seconds in the middle of the history
    start: float
    end: float
    manifests: int
    referrers: int = 0


def synthetic(
    target_versions: int,
    seed: int = 7,
    root: str = "",
    end: datetime | None = None,
    *,
    collect_untagged: bool = True,
    referrers: float = 0.0,
) -> tuple[RegistrySimulator, Workload]:
    """A registry history of about ``target_versions`` object versions: pushes on shared base layers,
    tag overwrites, multi-arch indexes, manifest deletes and weekly ``garbage-collect`` (with
    ``--delete-untagged`` unless ``collect_untagged`` is false). With ``referrers`` > 0, that share of
    pushes is followed by an OCI referrer (a signature) about the pushed manifest; at 0 the history is
    the same as before the option existed (no extra random draws)."""
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not secrets
    random.seed(seed)  # upload UUIDs
    per_push = 33  # measured: versions written by an average push of this workload
    pushes_expected = max(4, target_versions // per_push)
    end = end or datetime.now(UTC) - timedelta(hours=3)
    span = timedelta(days=max(14, min(180, pushes_expected // 50))).total_seconds()
    sim = RegistrySimulator(root, start=end - timedelta(seconds=span))
    start = sim.clock
    step = span / pushes_expected
    n_repos = max(2, min(400, int(math.sqrt(pushes_expected) * 1.5)))
    repos = [f"team{i % 17}/svc-{i}" for i in range(n_repos)]
    bases = [
        [Blob(rng.randbytes(rng.randint(256, 1024))) for _ in range(rng.randint(1, 3))] for _ in range(6)
    ]
    pushes = indexes = deletes = collections = signed = 0
    next_gc = start + 7 * 86400
    midpoint = start + span / 2
    while len(sim.ops) < target_versions:
        repo = (
            repos[min(int(rng.paretovariate(1.2)) - 1, n_repos - 1)]
            if rng.random() < 0.5
            else rng.choice(repos)
        )
        tag = rng.choice(["latest", "stable", f"1.{rng.randint(0, 6)}", f"2.{rng.randint(0, 3)}"])
        base = rng.choice(bases)
        if rng.random() < 0.08:
            children = [
                (oci_image(rng, [*base, Blob(rng.randbytes(rng.randint(128, 768)))], arch, repo), arch)
                for arch in ("amd64", "arm64")
            ]
            image = oci_index(children)
            indexes += 1
        else:
            own = [Blob(rng.randbytes(rng.randint(128, 768))) for _ in range(rng.randint(1, 2))]
            image = oci_image(rng, [*base, *own], "amd64", repo)
        sim.push(repo, tag, image)
        pushes += 1
        if referrers and rng.random() < referrers:
            sim.push_referrer(
                repo, oci_referrer(rng, image, "application/vnd.dev.cosign.simplesigning.v1+json")
            )
            signed += 1
        if rng.random() < 0.03 and sim.tags.get(repo):
            victim = rng.choice(sorted(sim.tags[repo]))
            sim.delete_manifest(repo, sim.tags[repo][victim])
            deletes += 1
        sim.advance(step * rng.uniform(0.5, 1.5))
        if sim.clock >= next_gc:
            sim.garbage_collect(delete_untagged=collect_untagged)
            collections += 1
            next_gc += 7 * 86400
    workload = Workload(
        versions=len(sim.ops),
        pushes=pushes,
        indexes=indexes,
        deletes=deletes,
        collections=collections,
        repositories=sorted(sim.revisions),
        midpoint=midpoint,
        start=start,
        end=sim.clock,
        manifests=len(sim.manifests),
        referrers=signed,
    )
    return sim, workload


# --- writing the ops: a preload file the emulator loads before it serves -------------------------------


def write_preload(path: Path, bucket: str, ops: Iterable[Op], versioned: bool = True) -> int:
    """Pickle ``ops`` in chunks (streamed: a million ops never sit in one pickle)."""
    count = 0
    with path.open("wb") as out:
        pickle.dump({"bucket": bucket, "versioned": versioned}, out, protocol=pickle.HIGHEST_PROTOCOL)
        chunk: list[tuple[str, bytes | None, float]] = []
        for op in ops:
            chunk.append((op.key, op.body, op.at))
            count += 1
            if len(chunk) == 20000:
                pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
                chunk = []
        if chunk:
            pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
    return count


def _read_chunks(stream: BinaryIO) -> Iterator[list[tuple[str, bytes | None, float]]]:
    while True:
        try:
            yield pickle.load(stream)  # noqa: S301 - our own file, written by write_preload
        except EOFError:
            return


def load_preload(path: Path) -> int:
    """Inside the emulator process: create the bucket and apply every op to moto's S3 backend, with
    each version's LastModified set to the op's time. Returns the number of versions written."""
    from moto.s3.models import s3_backends

    backend = s3_backends["123456789012"]["aws"]
    count = 0
    with path.open("rb") as stream:
        header = pickle.load(stream)  # noqa: S301 - our own file
        bucket_name = header["bucket"]
        backend.create_bucket(bucket_name, "us-east-1")
        if header["versioned"]:
            backend.put_bucket_versioning(bucket_name, "Enabled")
        store = backend.get_bucket(bucket_name).keys
        for chunk in _read_chunks(stream):
            for key, body, at in chunk:
                if body is None:
                    backend.delete_object(bucket_name, key)
                else:
                    backend.put_object(bucket_name, key, body)
                version = store.getlist(key)[-1]
                version.last_modified = datetime.fromtimestamp(at, UTC).replace(tzinfo=None)
                count += 1
    return count


def image_from_oci(layout: Path, digest: str) -> Image:
    """The image (or index, children included) ``digest`` of an OCI layout, as the simulator takes it:
    the very bytes skopeo pushes."""
    import json

    def blob(d: str) -> Blob:
        return Blob((layout / "blobs" / d.replace(":", "/")).read_bytes())

    manifest = blob(digest)
    doc = json.loads(manifest.data)
    if "manifests" in doc:
        return Image(manifest, (), tuple(image_from_oci(layout, c["digest"]) for c in doc["manifests"]))
    return Image(
        manifest, tuple([*(blob(x["digest"]) for x in doc["layers"]), blob(doc["config"]["digest"])])
    )
