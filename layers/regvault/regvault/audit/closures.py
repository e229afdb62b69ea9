"""Closure rules: every live tag's manifest → child manifests → config and layers, the links each
needs, and which earlier images of the tag can still be recovered.

``TagRules`` reads the model and the manifests and only appends findings; what it saw that the
repository-wide rules need (links it checked, manifests it reported missing) it returns in
``Visited``, so those rules take it as an argument instead of sharing state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from regvault.audit.findings import Finding, HistoryEntry, TagReport
from regvault.images.closure import Planner, tag_pointers
from regvault.images.sources import LinkReader, ManifestSource, has_data, is_live
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, LayerLink, RevisionLink, TagCurrentLink, TagIndexLink
from regvault.storage.model import RegistryModel, RepositoryKeys, TagKeys, link_candidates


@dataclass
class Visited:
    """What the closure walk of one repository saw, for the rules that run after it."""

    checked_links: set[str] = field(default_factory=set)  # link keys judged as part of a live closure
    missing_manifests: set[Digest] = field(default_factory=set)  # reported through a live tag


class TagRules:
    """The closure and history rules of one repository's tags."""

    def __init__(
        self, model: RegistryModel, manifests: ManifestSource, links: LinkReader, planner: Planner
    ) -> None:
        self.model = model
        self.layout = model.layout
        self.manifests = manifests
        self.links = links
        self.planner = planner
        self.findings: list[Finding] = []
        self.visited = Visited()

    def add(self, code: str, message: str, **where: Any) -> None:
        self.findings.append(Finding(code, message, **where))

    # --- live closures -------------------------------------------------------------------
    def check_link(self, link: LayerLink | RevisionLink, tag: str | None, code: str, what: str) -> None:
        """The link exists now and holds exactly its digest; else ``code`` or LINK_MALFORMED."""
        expected, repo = link.digest, link.repository
        missing_key = self.layout.key(link)
        history = self.model.inventory.get(missing_key)
        if history is None or history.current is None:
            self.add(
                code,
                f"{what} {expected.short} has no link in {repo}",
                repository=repo,
                tag=tag,
                digest=str(expected),
                key=missing_key,
                recoverable=has_data(history),
            )
            return
        self.visited.checked_links.add(history.key)
        verdict = self.links.holds(history, history.current, expected)
        if verdict is not True:
            older = [v for v in history.data_versions[1:] if self.links.holds(history, v, expected) is True]
            self.add(
                "LINK_MALFORMED",
                f"link {'/'.join(history.key.rsplit('/', 4)[-4:])} is malformed: {verdict}",
                repository=repo,
                tag=tag,
                digest=str(expected),
                key=history.key,
                recoverable=bool(older),
            )

    def check_manifest(
        self,
        repo: RepositoryKeys,
        digest: Digest,
        tag: str,
        top: bool,
        declared_size: int | None,
        seen: set[Digest],
    ) -> None:
        if digest in seen:
            self.add(
                "MANIFEST_UNPARSEABLE",
                f"index cycle through {digest.short}",
                repository=repo.name,
                tag=tag,
                digest=str(digest),
            )
            return
        seen = seen | {digest}
        blob_key = self.layout.key(BlobData(digest))
        blob = self.model.blobs.get(digest)
        where = {"repository": repo.name, "tag": tag, "digest": str(digest)}
        self.check_link(RevisionLink(repo.name, digest), tag, "REVISION_LINK_MISSING", "manifest")
        read = self.manifests.current(digest)
        if read is None:
            code = "TAG_TARGET_MISSING" if top else "CHILD_MANIFEST_MISSING"
            what = f"{repo.name}:{tag} points at" if top else f"an index of {repo.name}:{tag} references"
            recoverable = self.manifests.best_recoverable(digest) is not None
            self.visited.missing_manifests.add(digest)
            self.add(
                code,
                f"{what} {digest.short}, which is not in blobs/",
                key=blob_key,
                recoverable=recoverable,
                **where,
            )
            return
        assert blob is not None
        if read.digest_ok is False:
            good = self.manifests.best_recoverable(digest)
            self.add(
                "MANIFEST_DIGEST_MISMATCH",
                f"manifest bytes of {digest.short} do not hash to its digest",
                key=blob_key,
                recoverable=good is not None,
                **where,
            )
            return
        if declared_size is not None and read.size != declared_size:
            self.add(
                "BLOB_SIZE_MISMATCH",
                f"manifest {digest.short} is {read.size} bytes, its index declares {declared_size}",
                key=blob_key,
                recoverable=None,
                **where,
            )
        if read.manifest is None:
            self.add(
                "MANIFEST_UNPARSEABLE",
                f"manifest {digest.short}: {read.error}",
                key=blob_key,
                recoverable=None,
                **where,
            )
            return
        manifest = read.manifest
        if manifest.legacy:
            self.add(
                "MANIFEST_LEGACY_SCHEMA1",
                f"{repo.name}:{tag} uses a Docker schema1 manifest",
                key=blob_key,
                **where,
            )
        for child in manifest.children:
            self.check_manifest(repo, child.digest, tag, False, child.size, seen)
        for blob_desc in manifest.blobs:
            self.check_blob(repo, blob_desc.digest, blob_desc.size, tag)

    def check_blob(self, repo: RepositoryKeys, digest: Digest, declared: int | None, tag: str) -> None:
        key = self.layout.key(BlobData(digest))
        history = self.model.blobs.get(digest)
        where = {"repository": repo.name, "tag": tag, "digest": str(digest), "key": key}
        if history is None or history.current is None:
            self.add(
                "BLOB_MISSING",
                f"blob {digest.short} of {repo.name}:{tag} is not in blobs/",
                recoverable=has_data(history),
                **where,
            )
        elif declared is not None and history.current.size != declared:
            older = [v for v in history.data_versions[1:] if v.size == declared]
            self.add(
                "BLOB_SIZE_MISMATCH",
                f"blob {digest.short} is {history.current.size} bytes, its manifest declares {declared}",
                recoverable=bool(older),
                **where,
            )
        self.check_link(LayerLink(repo.name, digest), tag, "LAYER_LINK_MISSING", "blob")

    # --- tags and history ----------------------------------------------------------------
    def audit_tag(self, repo: RepositoryKeys, tag: TagKeys) -> TagReport:
        current_digest: Digest | None = None
        where = {"repository": repo.name, "tag": tag.name}
        current_key = self.layout.key(TagCurrentLink(repo.name, tag.name))
        if tag.current is not None and tag.current.current is not None:
            result = self.links.resolve(tag.current, tag.current.current, link_candidates(repo, tag))
            if isinstance(result, Digest):
                current_digest = result
                self.check_manifest(repo, result, tag.name, True, None, set())
                index = tag.index.get(result)
                if not is_live(index):
                    self.add(
                        "TAG_INDEX_LINK_MISSING",
                        f"{repo.name}:{tag.name} has no index entry for {result.short}",
                        digest=str(result),
                        key=self.layout.key(TagIndexLink(repo.name, tag.name, result)),
                        recoverable=has_data(index),
                        **where,
                    )
            else:
                candidates = link_candidates(repo, tag)
                older = [
                    v
                    for v in tag.current.data_versions[1:]
                    if isinstance(self.links.resolve(tag.current, v, candidates), Digest)
                ]
                self.add(
                    "LINK_MALFORMED",
                    f"tag link of {repo.name}:{tag.name} is malformed: {result}",
                    key=current_key,
                    recoverable=bool(older),
                    **where,
                )
        history = []
        for digest, at in tag_pointers(self.links, repo, tag):
            is_current = digest == current_digest
            plan = self.planner.image(repo.name, digest, tag.name)
            missing = [n.key for n in plan.missing]
            history.append(
                HistoryEntry(
                    str(digest), at, is_current, plan.media_type, plan.size, plan.recoverable, missing
                )
            )
            if not is_current and not plan.recoverable:
                self.add(
                    "HISTORY_UNRECOVERABLE",
                    f"{repo.name}:{tag.name} earlier image {digest.short} cannot be restored: "
                    f"{len(missing)} object(s) have no version left",
                    digest=str(digest),
                    key=missing[0],
                    recoverable=False,
                    **where,
                )
        if tag.deleted and tag.current is not None and has_data(tag.current):
            last = history[0] if history else None
            self.add(
                "TAG_DELETED",
                f"{repo.name}:{tag.name} was deleted"
                + (f"; it last pointed at {last.digest[:19]}…" if last else ""),
                digest=last.digest if last else None,
                key=current_key,
                recoverable=bool(last and last.recoverable),
                **where,
            )
        return TagReport(
            repo.name, tag.name, str(current_digest) if current_digest else None, tag.deleted, history
        )
