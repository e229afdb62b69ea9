"""The registry's S3 key layout — the only module that knows key shapes.

Mirrors distribution's ``registry/storage/paths.go``: typed entities go in, keys come out, and keys
parse back into entities. Every other module asks this one for keys and prefixes.

Under ``<root>/docker/registry/v2/``::

    blobs/<alg>/<first two hex>/<hex>/data                        BlobData
    repositories/<name>/_layers/<alg>/<hex>/link                  LayerLink
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link     RevisionLink
    repositories/<name>/_manifests/tags/<tag>/current/link        TagCurrentLink
    repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link   TagIndexLink
    repositories/<name>/_uploads/<uuid>/<rest>                    UploadObject

Anything else under the prefix parses to ``UnknownKey`` with the reason, never an exception.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from regvault.errors import InvalidInput, NoRegistryFound
from regvault.storage.digest import Digest
from regvault.storage.reference import is_valid_repository, is_valid_tag

REGISTRY_PATH = "docker/registry/v2"
_REPO_SECTIONS = ("_layers", "_manifests", "_uploads")


@dataclass(frozen=True, slots=True)
class BlobData:
    digest: Digest


@dataclass(frozen=True, slots=True)
class LayerLink:
    repository: str
    digest: Digest


@dataclass(frozen=True, slots=True)
class RevisionLink:
    repository: str
    digest: Digest


@dataclass(frozen=True, slots=True)
class TagCurrentLink:
    repository: str
    tag: str


@dataclass(frozen=True, slots=True)
class TagIndexLink:
    repository: str
    tag: str
    digest: Digest


@dataclass(frozen=True, slots=True)
class UploadObject:
    repository: str
    upload_id: str
    path: str  # "data", "startedat", "hashstates/sha256/0", ...


@dataclass(frozen=True, slots=True)
class UnknownKey:
    relative: str  # the key below the registry prefix
    reason: str


Entity = BlobData | LayerLink | RevisionLink | TagCurrentLink | TagIndexLink | UploadObject | UnknownKey


def normalize_root(root: str | None) -> str:
    """The storage driver's ``rootdirectory`` as an S3 key prefix: no leading/trailing slash."""
    return (root or "").strip().strip("/")


class RegistryLayout:
    """Keys and prefixes of one registry (one bucket + root directory)."""

    def __init__(self, root: str | None = "") -> None:
        self.root = normalize_root(root)
        self.prefix = f"{self.root}/{REGISTRY_PATH}/" if self.root else f"{REGISTRY_PATH}/"

    # --- prefixes -------------------------------------------------------------------------
    @property
    def blobs_prefix(self) -> str:
        return f"{self.prefix}blobs/"

    @property
    def repositories_prefix(self) -> str:
        return f"{self.prefix}repositories/"

    def repository_prefix(self, repository: str) -> str:
        return f"{self.repositories_prefix}{repository}/"

    def manifests_prefix(self, repository: str) -> str:
        return f"{self.repository_prefix(repository)}_manifests/"

    def tags_prefix(self, repository: str) -> str:
        return f"{self.manifests_prefix(repository)}tags/"

    def upload_prefix(self, repository: str, upload_id: str) -> str:
        """The scratch folder of one upload session (what the registry writes before a blob is committed)."""
        return f"{self.repository_prefix(repository)}_uploads/{upload_id}/"

    # --- regvault's own objects beside the registry (never under docker/: the registry ignores them) --
    @property
    def regvault_prefix(self) -> str:
        return f"{self.root}/regvault/" if self.root else "regvault/"

    @property
    def lease_key(self) -> str:
        """The lease regvault's writers (gc, gc --undo) take so that they never run at the same time."""
        return f"{self.regvault_prefix}lease.json"

    def guard_pin_key(self, repository: str, tag: str) -> str:
        """The digest a protected tag keeps, recorded by the guard the first time it sees the tag."""
        return f"{self.regvault_prefix}guard/pins/{repository}/{tag}.json"

    def gc_run_key(self, run_id: str) -> str:
        return f"{self.regvault_prefix}gc-runs/{run_id}.json"

    def no_registry(self, bucket: str, repository: str | None = None) -> NoRegistryFound:
        """The error for a walk that found nothing: the one place its wording lives."""
        if repository is not None:
            return NoRegistryFound(f"no repository {repository!r} under {self.prefix!r} in bucket {bucket!r}")
        return NoRegistryFound(
            f"no registry under root {self.root or '(empty)'!r} in bucket {bucket!r} "
            f"(nothing below {self.prefix!r}): check --root / REGVAULT_ROOT"
        )

    def shard_bounds(self, blob_shards: int = 16, repositories: Sequence[str] | None = None) -> list[str]:
        """Sorted keys that cut everything below the prefix into ranges a parallel walk lists apart.

        Range ``k`` holds the keys after ``bounds[k-1]`` up to and including ``bounds[k]`` (the first
        range starts at the prefix, the last runs to its end), so every key, also one the layout does not
        know, is in exactly one range. ``blob_shards`` (16 or 256) splits ``blobs/sha256/`` by leading hex
        digits. Repositories are split at the ``repositories`` prefixes given (the folders a delimiter
        listing found: ``inventory.repository_bounds``), else by their first character.
        """
        if blob_shards not in (16, 256):
            raise InvalidInput("blob shards must be 16 or 256")
        width = 1 if blob_shards == 16 else 2
        bounds = [f"{self.blobs_prefix}sha256/{i:0{width}x}" for i in range(1, blob_shards)]
        bounds.append(self.repositories_prefix)
        if repositories:
            top = self.repositories_prefix
            bounds += sorted({p for p in repositories if p.startswith(top) and p > top})
        else:
            bounds += [f"{self.repositories_prefix}{c}" for c in "0123456789abcdefghijklmnopqrstuvwxyz"]
        return bounds

    # --- entity -> key --------------------------------------------------------------------
    def key(self, entity: Entity) -> str:
        p = self.prefix
        match entity:
            case BlobData(digest=d):
                return f"{p}blobs/{d.algorithm}/{d.hex[:2]}/{d.hex}/data"
            case LayerLink(repository=r, digest=d):
                return f"{p}repositories/{r}/_layers/{d.algorithm}/{d.hex}/link"
            case RevisionLink(repository=r, digest=d):
                return f"{p}repositories/{r}/_manifests/revisions/{d.algorithm}/{d.hex}/link"
            case TagCurrentLink(repository=r, tag=t):
                return f"{p}repositories/{r}/_manifests/tags/{t}/current/link"
            case TagIndexLink(repository=r, tag=t, digest=d):
                return f"{p}repositories/{r}/_manifests/tags/{t}/index/{d.algorithm}/{d.hex}/link"
            case UploadObject(repository=r, upload_id=u, path=rest):
                return f"{p}repositories/{r}/_uploads/{u}/{rest}"
            case UnknownKey(relative=rel):
                return f"{p}{rel}"
        raise TypeError(f"not a layout entity: {entity!r}")

    # --- key -> entity --------------------------------------------------------------------
    def relative(self, key: str) -> str | None:
        return key[len(self.prefix) :] if key.startswith(self.prefix) else None

    def upload_group(self, key: str) -> tuple[str, str] | None:
        """(repository, upload id) for a well-formed upload scratch key, else None (an inventory
        folds these keys into one summary per upload)."""
        if not is_upload_scratch(key):
            return None
        entity = self.parse(key)
        if isinstance(entity, UploadObject):
            return entity.repository, entity.upload_id
        return None

    def scratch_folder(self, key: str) -> str | None:
        """The ``repositories/<name>/_uploads/`` folder a key lies in, else None: a walk may list that
        folder's live keys only instead of every version of it (``inventory.walk(skip_scratch=)``)."""
        if not is_upload_scratch(key) or not key.startswith(self.repositories_prefix):
            return None
        parts = key[len(self.repositories_prefix) :].split("/")
        section_at = next((i for i, part in enumerate(parts) if part in _REPO_SECTIONS), None)
        if section_at is None or section_at == 0 or parts[section_at] != "_uploads":
            return None
        repository = "/".join(parts[:section_at])
        if not is_valid_repository(repository):
            return None
        return f"{self.repositories_prefix}{repository}/_uploads/"

    def parse(self, key: str) -> Entity:
        rel = self.relative(key)
        if rel is None:
            return UnknownKey(key, f"outside the registry prefix {self.prefix!r}")
        parts = rel.split("/")
        if parts[0] == "blobs":
            return _parse_blob(rel, parts)
        if parts[0] == "repositories":
            return _parse_repository_key(rel, parts[1:])
        return UnknownKey(rel, "neither blobs/ nor repositories/")


def is_upload_scratch(key_or_prefix: str) -> bool:
    """Whether a key (or a lifecycle rule's prefix) lies in some repository's upload scratch."""
    return "/_uploads/" in key_or_prefix


def _digest(rel: str, algorithm: str, hexpart: str) -> Digest | UnknownKey:
    try:
        return Digest.from_parts(algorithm, hexpart)
    except InvalidInput as exc:
        return UnknownKey(rel, str(exc))


def _parse_blob(rel: str, parts: list[str]) -> Entity:
    # blobs/<alg>/<2hex>/<hex>/data
    if len(parts) != 5 or parts[4] != "data":
        return UnknownKey(rel, "blob keys are blobs/<alg>/<2 hex>/<hex>/data")
    d = _digest(rel, parts[1], parts[3])
    if isinstance(d, UnknownKey):
        return d
    if parts[2] != d.hex[:2]:
        return UnknownKey(rel, f"blob directory {parts[2]!r} does not match digest {d.short}")
    return BlobData(d)


def _parse_repository_key(rel: str, parts: list[str]) -> Entity:
    section_at = next((i for i, part in enumerate(parts) if part in _REPO_SECTIONS), None)
    if section_at is None or section_at == 0:
        return UnknownKey(rel, "no _layers/_manifests/_uploads section after the repository name")
    repository = "/".join(parts[:section_at])
    if not is_valid_repository(repository):
        return UnknownKey(rel, f"invalid repository name {repository[:80]!r}")
    section, rest = parts[section_at], parts[section_at + 1 :]
    if section == "_layers":
        if len(rest) == 3 and rest[2] == "link":
            d = _digest(rel, rest[0], rest[1])
            return d if isinstance(d, UnknownKey) else LayerLink(repository, d)
        return UnknownKey(rel, "layer links are _layers/<alg>/<hex>/link")
    if section == "_uploads":
        if len(rest) >= 2 and rest[0]:
            return UploadObject(repository, rest[0], "/".join(rest[1:]))
        return UnknownKey(rel, "upload keys are _uploads/<uuid>/<file>")
    # _manifests
    if len(rest) == 4 and rest[0] == "revisions" and rest[3] == "link":
        d = _digest(rel, rest[1], rest[2])
        return d if isinstance(d, UnknownKey) else RevisionLink(repository, d)
    if len(rest) >= 4 and rest[0] == "tags":
        tag = rest[1]
        if not is_valid_tag(tag):
            return UnknownKey(rel, f"invalid tag {tag[:80]!r}")
        if rest[2:] == ["current", "link"]:
            return TagCurrentLink(repository, tag)
        if len(rest) == 6 and rest[2] == "index" and rest[5] == "link":
            d = _digest(rel, rest[3], rest[4])
            return d if isinstance(d, UnknownKey) else TagIndexLink(repository, tag, d)
    return UnknownKey(rel, "unrecognised _manifests key")
