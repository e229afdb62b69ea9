"""The audit's side of the journal: a tag whose ``current/link`` got a version no registry push (or
delete) explains was written behind the registry's back - straight to S3, by a script or a person with
the bucket's keys. regvault's own writes (restore, repair, the guard) carry a ``regvault-*`` metadata
mark and are not reported. Only versions written since the journal began are judged."""

from __future__ import annotations

from datetime import datetime, timedelta

from regvault.audit.findings import Finding
from regvault.images.sources import LinkReader
from regvault.journal.record import Journal
from regvault.storage.digest import Digest
from regvault.storage.model import RegistryModel, link_candidates
from regvault.storage.store import RegistryStore

WINDOW = timedelta(minutes=2)  # a push's S3 write and its notification's timestamp, apart at most


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _explained(times: list[datetime], at: datetime, window: timedelta) -> bool:
    """Use up the journal event closest to ``at`` within ``window`` (a push explains one write)."""
    near = [t for t in times if abs(at - t) <= window]
    if not near:
        return False
    times.remove(min(near, key=lambda t: abs(at - t)))
    return True


def writes_outside_registry(
    store: RegistryStore,
    model: RegistryModel,
    links: LinkReader,
    journal: Journal,
    window: timedelta = WINDOW,
) -> list[Finding]:
    times = [t for t in (_when(e.at) for e in journal.entries) if t is not None]
    if not times:
        return []
    began = min(times) - window
    pushes: dict[tuple[str, str, str], list[datetime]] = {}
    deletes: dict[str, list[datetime]] = {}
    for e in journal.entries:
        when = _when(e.at)
        if when is None:
            continue
        if e.action == "push" and e.tag and e.digest:
            pushes.setdefault((e.repository, e.tag, e.digest), []).append(when)
        elif e.action == "delete":
            deletes.setdefault(e.repository, []).append(when)
    findings = []
    for repo in model.repositories.values():
        for tag in repo.tags.values():
            history = tag.current
            if history is None:
                continue
            for version in reversed(history.versions):  # oldest first: each push explains one write
                at = version.last_modified
                if at < began:
                    continue
                if version.is_delete_marker:
                    if _explained(deletes.get(repo.name, []), at, window):
                        continue
                    what, digest = "deleted", None
                else:
                    resolved = links.resolve(history, version, link_candidates(repo, tag))
                    if not isinstance(resolved, Digest):
                        continue
                    if _explained(pushes.get((repo.name, tag.name, str(resolved)), []), at, window):
                        continue
                    meta = store.version_metadata(history.key, version.version_id)
                    if any(k.startswith("regvault-") for k in meta):
                        continue  # regvault's own copy-forward (restore, repair, the guard)
                    what, digest = f"set to {resolved.short}", str(resolved)
                findings.append(
                    Finding(
                        "TAG_WRITTEN_OUTSIDE_REGISTRY",
                        f"{repo.name}:{tag.name} was {what} at {at:%Y-%m-%d %H:%M:%S} UTC (version "
                        f"{version.version_id}) and the registry's push journal has no such push or "
                        "delete: written behind the registry's back (straight to S3?)",
                        repository=repo.name,
                        tag=tag.name,
                        digest=digest,
                        key=history.key,
                    )
                )
    return findings
