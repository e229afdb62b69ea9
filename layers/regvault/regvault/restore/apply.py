"""Restore previous image versions by copying old S3 object versions forward.

Safety rules (each has a test):
- Copy-forward only: an object comes back as a new version copied from one of its old versions (or, for
  links, from another link holding the same 71 bytes). Nothing is ever deleted or overwritten in place:
  every version present before a restore is present after it.
- Order: blobs, manifests, ``_layers`` links, revision links, the tag's index entry, and the tag's
  ``current/link`` last, so a client never sees the tag point at an incomplete image.
- Not restorable (some object has no suitable version left): nothing is written; the plan names it.
- Someone pushed to the tag after the plan was made: stop before moving the tag (``force`` overrides).
- Interrupted: running the same restore again completes it; a finished restore changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from regvault.errors import RegvaultError
from regvault.images.closure import Need
from regvault.restore.planner import RestorePlan
from regvault.restore.targets import Target
from regvault.storage.layout import RegistryLayout, TagCurrentLink
from regvault.storage.store import RegistryStore


class NotRestorable(RegvaultError):
    exit_code = 1


class TagMoved(RegvaultError):
    """Someone pushed to the tag after the plan was made."""

    exit_code = 1


@dataclass
class ApplyResult:
    copied: int
    operations: int


def apply_plan(
    store: RegistryStore,
    plan: RestorePlan,
    *,
    force: bool = False,
    progress: Callable[[int, int, Need], None] | None = None,
    tag_metadata: dict[str, str] | None = None,
) -> ApplyResult:
    """Carry the plan out. Writes nothing when the plan is not restorable. ``tag_metadata`` marks the
    copies that move a tag (the guard recognises its own writes by it)."""
    if not plan.restorable:
        names = ", ".join(sorted(n.key for n in plan.missing)[:5])
        raise NotRestorable(f"not restorable: {len(plan.missing)} object(s) have no version left ({names})")
    operations = plan.operations
    expected = {store_key(plan, t): t for t in plan.targets}
    copied = 0
    for i, need in enumerate(operations, 1):
        if need.phase == "tag-current":
            target = expected[need.key]
            latest = store.latest_version_id(need.key)
            if latest != target.current_version and not force:
                raise TagMoved(
                    f"{target.repository}:{target.tag} changed after the plan was made (someone pushed?): "
                    "the tag was not moved; plan again, or use --force"
                )
        assert need.source_key is not None and need.source_version is not None
        if need.phase == "tag-current" and tag_metadata is not None:
            store.copy_version(need.key, need.source_key, need.source_version, need.size, tag_metadata)
        else:
            store.copy_version(need.key, need.source_key, need.source_version, need.size)
        copied += 1
        if progress:
            progress(i, len(operations), need)
    return ApplyResult(copied, len(operations))


def store_key(plan: RestorePlan, target: Target) -> str:
    return RegistryLayout(plan.root).key(TagCurrentLink(target.repository, target.tag))
