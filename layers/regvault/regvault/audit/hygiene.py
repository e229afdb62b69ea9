"""Repository hygiene: what a repository lists beyond its live closures — manifests pullable by digest
whose bytes are gone, and malformed links no current pull goes through (warnings)."""

from __future__ import annotations

from regvault.audit.closures import Visited
from regvault.audit.findings import WARNING, Finding
from regvault.images.sources import LinkReader, ManifestSource, is_live
from regvault.storage.digest import Digest
from regvault.storage.inventory import KeyHistory
from regvault.storage.layout import BlobData, RegistryLayout
from regvault.storage.model import RegistryModel, RepositoryKeys


def untagged_manifests(
    model: RegistryModel, manifests: ManifestSource, repo: RepositoryKeys, visited: Visited
) -> list[Finding]:
    """Revision links (pull by digest) whose manifest is not in blobs/, unless a tag already said so."""
    layout: RegistryLayout = model.layout
    out: list[Finding] = []
    for digest, revision in repo.revisions.items():
        if digest in visited.missing_manifests:
            continue
        if is_live(revision) and not is_live(model.blobs.get(digest)):
            message = f"{repo.name} lists manifest {digest.short} (pull by digest), but it is not in blobs/"
            recoverable = manifests.best_recoverable(digest) is not None
            key = layout.key(BlobData(digest))
            out.append(
                Finding.at_key("MANIFEST_MISSING", message, key, digest, recoverable, repository=repo.name)
            )
    return out


def other_links(links: LinkReader, repo: RepositoryKeys, visited: Visited) -> list[Finding]:
    """Links outside live closures: malformed ones are warnings (no current pull breaks)."""
    groups: list[tuple[Digest, KeyHistory]] = [*repo.layers.items(), *repo.revisions.items()]
    for tag in repo.tags.values():
        groups += list(tag.index.items())
    out: list[Finding] = []
    for digest, history in groups:
        if history.key in visited.checked_links or history.current is None:
            continue
        verdict = links.holds(history, history.current, digest)
        if verdict is not True:
            message = f"link is malformed: {verdict}"
            out.append(
                Finding.at_key(
                    "LINK_MALFORMED", message, history.key, digest, repository=repo.name, severity=WARNING
                )
            )
    return out
