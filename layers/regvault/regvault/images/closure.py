"""What one image needs in S3, and which object version can provide each piece.

The single source of truth for "can this image be restored": the audit's history check, ``regvault
history`` and the restore planner all ask ``Planner.image``. Each needed object is either fine as it is
(``ok``), can be brought back by copying an old version forward (``copy``, with the exact source key and
version), or has no suitable version left (``missing``). ``tag_pointers`` and ``pointer_at`` read a
tag's past from the versions of its links.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from regvault.images.sources import LinkReader, ManifestRead, ManifestSource, has_data
from regvault.storage.digest import Digest
from regvault.storage.inventory import KeyHistory, ObjectVersion
from regvault.storage.layout import BlobData, LayerLink, RevisionLink, TagCurrentLink, TagIndexLink
from regvault.storage.model import RegistryModel, RepositoryKeys, TagKeys, link_candidates

# --- tag history ---------------------------------------------------------------------------------

EPOCH = datetime.min.replace(tzinfo=UTC)


def tag_pointers(
    links: LinkReader, repo: RepositoryKeys, tag: TagKeys
) -> list[tuple[Digest, datetime | None]]:
    """Every digest the tag pointed at, with the most recent time it was set to it, newest first.

    From the versions of ``current/link`` (resolved by ETag, read when needed) and the tag's index
    entries (which outlive ``current/link`` versions that were never written or have expired).
    """
    out: dict[Digest, datetime | None] = {}
    candidates = link_candidates(repo, tag)
    if tag.current is not None:
        for version in tag.current.data_versions:
            result = links.resolve(tag.current, version, candidates)
            if isinstance(result, Digest) and result not in out:
                out[result] = version.last_modified
    for digest, history in tag.index.items():
        if digest not in out and has_data(history):
            out[digest] = history.first_written
    return sorted(out.items(), key=lambda kv: kv[1] or EPOCH, reverse=True)


def pointer_at(links: LinkReader, repo: RepositoryKeys, tag: TagKeys, when: datetime) -> Digest | None:
    """The digest the tag pointed at at ``when`` (None: the tag did not exist or was deleted then)."""
    if tag.current is None:
        return None
    version = tag.current.version_at(when)
    if version is None:
        return None
    result = links.resolve(tag.current, version, link_candidates(repo, tag))
    return result if isinstance(result, Digest) else None


Link = LayerLink | RevisionLink | TagCurrentLink | TagIndexLink

# --- the closure plan ----------------------------------------------------------------------------

OK, COPY, MISSING = "ok", "copy", "missing"
# restore order: blobs, then manifests' blobs, then links, then the tag's index, its current link last
PHASES = ("blob", "manifest", "layer-link", "revision-link", "tag-index", "tag-current")


@dataclass
class Need:
    phase: str
    key: str
    digest: Digest  # the digest the object is (blob) or must point at (link)
    state: str = OK
    source_key: str | None = None  # for COPY: the key and version copied onto ``key``
    source_version: str | None = None
    source_time: datetime | None = None
    size: int | None = None
    note: str = ""

    def copy_from(self, key: str, version: ObjectVersion) -> None:
        self.state, self.source_key = COPY, key
        self.source_version, self.source_time = version.version_id, version.last_modified

    def gone(self, why: str) -> None:
        self.state, self.note = MISSING, why


@dataclass
class ImagePlan:
    repository: str
    tag: str | None
    digest: Digest
    needs: list[Need] = field(default_factory=list)
    media_type: str | None = None
    size: int = 0  # manifest(s) + blobs, bytes

    @property
    def missing(self) -> list[Need]:
        return [n for n in self.needs if n.state == MISSING]

    @property
    def copies(self) -> list[Need]:
        return sorted((n for n in self.needs if n.state == COPY), key=lambda n: PHASES.index(n.phase))

    @property
    def recoverable(self) -> bool:
        return not self.missing


@dataclass
class _Walk:
    """One image's plan in the making: the repository it is planned in and what was visited."""

    plan: ImagePlan
    repo: RepositoryKeys | None
    seen: set[tuple[str, Digest]] = field(default_factory=set)

    def first_visit(self, kind: str, digest: Digest) -> bool:
        if (kind, digest) in self.seen:
            return False
        self.seen.add((kind, digest))
        return True


class Planner:
    def __init__(self, model: RegistryModel, manifests: ManifestSource, links: LinkReader) -> None:
        self.model = model
        self.layout = model.layout
        self.manifests = manifests
        self.links = links

    def image(self, repository: str, digest: Digest, tag: str | None, move_tag: bool = False) -> ImagePlan:
        """The plan to make ``repository@digest`` whole (and ``tag`` point at it when ``move_tag``)."""
        walk = _Walk(ImagePlan(repository, tag, digest), self.model.repositories.get(repository))
        self._manifest(walk, digest, None, top=True)
        if tag is not None:
            self._link(walk, "tag-index", TagIndexLink(repository, tag, digest), digest)
            if move_tag:
                self._link(walk, "tag-current", TagCurrentLink(repository, tag), digest)
        # one need per key: the first (deepest) occurrence wins
        plan = walk.plan
        unique: dict[str, Need] = {}
        for need in plan.needs:
            unique.setdefault(need.key, need)
        plan.needs = list(unique.values())
        return plan

    def _manifest(self, walk: _Walk, digest: Digest, declared: int | None, top: bool) -> None:
        """The manifest (an index's children first), its blobs, and its revision link."""
        if not walk.first_visit("manifest", digest):
            return
        plan = walk.plan
        key = self.layout.key(BlobData(digest))
        history = self.model.blobs.get(digest)
        need = Need("manifest", key, digest)
        current = self.manifests.current(digest)
        read: ManifestRead | None
        if current is not None and current.digest_ok and current.manifest is not None:
            read = current
        else:
            read = self.manifests.best_recoverable(digest)
            if read is None:
                need.gone("no version of the manifest hashes to its digest")
            else:
                version = next(v for v in history.versions if v.version_id == read.version_id)  # type: ignore[union-attr]
                need.copy_from(key, version)
        if read is not None and declared is not None and read.size != declared:
            # the index that references it declares another size: clients refuse the image, and no
            # version of this manifest (its bytes are fixed by the digest) can fix that
            need.gone(f"its index declares {declared} bytes, the manifest is {read.size}")
        if read is not None:
            need.size = read.size
            plan.size += read.size
            if top:
                plan.media_type = read.manifest.media_type if read.manifest else None
        if read is not None and read.manifest is not None:
            for child in read.manifest.children:
                self._manifest(walk, child.digest, child.size, top=False)
            for blob in read.manifest.blobs:
                self._blob(walk, blob.digest, blob.size)
        plan.needs.append(need)
        self._link(walk, "revision-link", RevisionLink(plan.repository, digest), digest)

    def _blob(self, walk: _Walk, digest: Digest, declared: int | None) -> None:
        """The blob (a version of the declared size) and its layer link."""
        if not walk.first_visit("blob", digest):
            return
        key = self.layout.key(BlobData(digest))
        history = self.model.blobs.get(digest)
        need = Need("blob", key, digest, size=declared)
        walk.plan.size += declared or 0

        def fits(v: ObjectVersion) -> bool:
            return declared is None or v.size == declared

        if history is None or history.current is None or not fits(history.current):
            version = next((v for v in (history.data_versions if history else []) if fits(v)), None)
            if version is None:
                need.gone("no version of the blob with the declared size")
            else:
                need.copy_from(key, version)
        walk.plan.needs.append(need)
        self._link(walk, "layer-link", LayerLink(walk.plan.repository, digest), digest)

    def _link(self, walk: _Walk, phase: str, link: Link, expected: Digest) -> None:
        key = self.layout.key(link)
        need = Need(phase, key, expected)
        history = self.model.inventory.get(key)
        if (
            history is not None
            and history.current is not None
            and self.links.holds(history, history.current, expected) is True
        ):
            walk.plan.needs.append(need)
            return
        source = self._link_source(walk.repo, history, expected)
        if source is None:
            need.gone(f"no version of any link holds {expected.short}")
        else:
            src_history, version = source
            need.copy_from(src_history.key, version)
        walk.plan.needs.append(need)

    def _link_source(
        self, repo: RepositoryKeys | None, own: KeyHistory | None, expected: Digest
    ) -> tuple[KeyHistory, ObjectVersion] | None:
        """A link version holding exactly ``expected``: the key's own newest one, else any link of
        this repository that holds the same 71 bytes (index, revision or layer link)."""
        candidates: list[KeyHistory] = [own] if own is not None else []
        if repo is not None:
            candidates += [
                h for h in (repo.revisions.get(expected), repo.layers.get(expected)) if h is not None
            ]
            candidates += [t.index[expected] for t in repo.tags.values() if expected in t.index]
            candidates += [t.current for t in repo.tags.values() if t.current is not None]
        for history in candidates:
            for version in history.data_versions:
                if self.links.holds(history, version, expected) is True:
                    return history, version
        return None
