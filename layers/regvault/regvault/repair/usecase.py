"""The repair use case, called by ``regvault repair`` and the RepairFunction (AutoRepair).

1. Audit (read-only) and group the error findings by image (``audit.grouping``).
2. For every live tag in scope whose image is broken and recoverable, plan an in-place restore (the tag's
   current digest: only what is missing is copied forward); with ``include_deleted``, every deleted tag
   back at its last digest. Each is planned by the restore core; one that turns out not restorable is
   listed and skipped.
3. With ``apply``: one combined plan, under the writers' lease, in the restore core's order (blobs,
   manifests, links, tags last), with its compare-and-swap on every tag it moves. Resumable: running it
   again copies only what is still missing. Nothing is deleted or overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from regvault.audit.findings import AuditReport
from regvault.audit.grouping import ImageGroup
from regvault.audit.run import AuditRequest, run_audit
from regvault.errors import InvalidInput, RegvaultError
from regvault.restore.apply import apply_plan
from regvault.restore.planner import RestorePlan, plan_restore
from regvault.restore.usecase import Notifier, Restarter
from regvault.storage.layout import RegistryLayout
from regvault.storage.lease import holder_id, release_lease, take_lease
from regvault.storage.reference import validate_repository, validate_tag
from regvault.storage.store import RegistryStore


@dataclass(frozen=True)
class RepairRequest:
    repository: str | None = None  # None: the whole registry
    tag: str | None = None  # with a repository: that tag only
    include_deleted: bool = False
    apply: bool = False
    workers: int = 8
    protected_tags: str = ""  # ProtectedTags: a protected tag off its pin is put back too

    def __post_init__(self) -> None:
        if self.repository is not None:
            validate_repository(self.repository)
        if self.tag is not None:
            if self.repository is None:
                raise InvalidInput("a tag needs its repository: REPO:TAG")
            validate_tag(self.tag)

    def covers(self, group: ImageGroup) -> bool:
        if self.repository is not None and group.repository != self.repository:
            return False
        if self.tag is not None and group.tag != self.tag:
            return False
        return group.state == "live" or self.include_deleted


@dataclass
class RepairItem:
    group: ImageGroup
    status: str  # "planned" | "repaired" | "unrecoverable"
    operations: int = 0
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        g = self.group
        return {
            "repository": g.repository,
            "tag": g.tag,
            "digest": g.digest,
            "state": g.state,
            "action": "bring back" if g.state == "deleted" else "repair in place",
            "status": self.status,
            "operations": self.operations,
            "codes": sorted({f.code for f in g.findings}),
            "why": self.why,
        }


@dataclass
class RepairOutcome:
    before: AuditReport
    items: list[RepairItem]
    applied: bool
    copied: int = 0
    registry_restart: str | None = None
    plan: RestorePlan | None = None
    other_errors: list[str] = field(default_factory=list)

    @property
    def unrecoverable(self) -> list[RepairItem]:
        return [i for i in self.items if i.status == "unrecoverable"]

    @property
    def exit_code(self) -> int:
        return 1 if self.unrecoverable else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "summary": {
                "images": len(self.items),
                "repairable": sum(1 for i in self.items if i.status != "unrecoverable"),
                "unrecoverable": len(self.unrecoverable),
                "operations": len(self.plan.operations) if self.plan else 0,
                "copied": self.copied,
                "errors_before": self.before.summary["errors"],
            },
            "images": [i.as_dict() for i in self.items],
            "other_errors": self.other_errors,
            "registry_restart": self.registry_restart,
        }


def repair_registry(
    store: RegistryStore,
    layout: RegistryLayout,
    request: RepairRequest,
    *,
    restarter: Restarter | None = None,
    notifier: Notifier | None = None,
    report: AuditReport | None = None,
) -> RepairOutcome:
    """Plan the repair (and with ``request.apply`` carry it out). ``report``: an audit of this registry
    made just now (the scheduled audit passes its own); without one, the registry is audited first."""
    if report is None:
        audit = AuditRequest(
            workers=request.workers, usage=False, read_posture=False, protected_tags=request.protected_tags
        )
        report = run_audit(store, layout, audit)
    if request.repository is not None and request.repository not in {t.repository for t in report.tags}:
        raise layout.no_registry(store.bucket, request.repository)
    groups = report.images
    grouped = {id(f) for g in groups for f in g.findings}
    other = [
        f"{f.code}: {f.message}"
        for f in report.findings
        if f.severity == "error" and id(f) not in grouped and request.repository is None
    ]
    items: list[RepairItem] = []
    plans: list[RestorePlan] = []
    for group in groups:
        if not request.covers(group):
            continue
        if not group.recoverable or group.digest is None:
            lost = [m["key"] or m["digest"] for m in group.missing if m["recoverable"] is not True]
            why = "no version left of " + ", ".join(str(k) for k in lost[:3]) if lost else "digest unknown"
            items.append(RepairItem(group, "unrecoverable", why=why))
            continue
        try:
            plan, _ = plan_restore(store, layout, group.repository, group.tag, to=group.digest)
        except RegvaultError as exc:
            items.append(RepairItem(group, "unrecoverable", why=str(exc)))
            continue
        if not plan.restorable:
            names = ", ".join(sorted(str(layout.relative(n.key)) for n in plan.missing)[:3])
            items.append(RepairItem(group, "unrecoverable", why=f"no version left of {names}"))
            continue
        plans.append(plan)
        items.append(RepairItem(group, "planned", operations=len(plan.operations)))
    combined = (
        RestorePlan(
            store.bucket,
            layout.root,
            [t for p in plans for t in p.targets],
            [i for p in plans for i in p.images],
        )
        if plans
        else None
    )
    outcome = RepairOutcome(report, items, False, plan=combined, other_errors=other)
    if not (request.apply and combined is not None):
        return outcome
    now = datetime.now(UTC)
    lease = take_lease(store, layout, holder_id("repair", now), "repair", now)
    try:
        outcome.copied = apply_plan(store, combined, tag_metadata={"regvault-repair": lease.holder}).copied
    finally:
        release_lease(store, layout, lease)
    outcome.applied = True
    for item in items:
        if item.status == "planned":
            item.status = "repaired"
    if restarter is not None and combined.brings_blobs_back:
        outcome.registry_restart = restarter.restart()
    if notifier is not None:
        done = ", ".join(f"{i.group.repository}:{i.group.tag}" for i in items if i.status == "repaired")
        notifier.publish(
            f"regvault: repaired {sum(1 for i in items if i.status == 'repaired')} image(s)",
            f"Repaired {done} in s3://{store.bucket}/{layout.root}: {outcome.copied} object version(s) "
            f"copied forward; {len(outcome.unrecoverable)} image(s) could not be repaired.",
        )
    return outcome


def needs_healing(report: AuditReport) -> bool:
    """The scheduled audit hands over to self-healing when some live image is broken and recoverable."""
    return any(g.state == "live" and g.recoverable for g in report.images)


def heal(
    store: RegistryStore,
    layout: RegistryLayout,
    *,
    restarter: Restarter | None = None,
    notifier: Notifier | None = None,
    workers: int = 8,
    protected_tags: str = "",
) -> dict[str, Any]:
    """Self-healing (the template's ``AutoRepair``): repair every recoverable broken live image, audit
    again, and send before/after in one notice. Deleted tags are not brought back (a delete may be
    meant); images S3 cannot repair are named."""
    request = RepairRequest(apply=True, workers=workers, protected_tags=protected_tags)
    outcome = repair_registry(store, layout, request, restarter=restarter)
    audit = AuditRequest(workers=workers, usage=False, read_posture=False, protected_tags=protected_tags)
    after = run_audit(store, layout, audit)
    before_errors = outcome.before.summary["errors"]
    left = [g for g in after.images if g.state == "live"]
    doc = {
        **outcome.as_dict(),
        "errors_after": after.summary["errors"],
        "recoverable_left": sum(1 for g in left if g.recoverable),
        "broken_after": [f"{g.repository}:{g.tag}" for g in left],
    }
    if notifier is not None and (outcome.items or before_errors):
        repaired = [f"{i.group.repository}:{i.group.tag}" for i in outcome.items if i.status == "repaired"]
        lost = [f"{i.group.repository}:{i.group.tag} ({i.why})" for i in outcome.unrecoverable]
        notifier.publish(
            f"regvault: self-healing repaired {len(repaired)} image(s), "
            f"{after.summary['errors']} error(s) left",
            f"Registry s3://{store.bucket}/{layout.root}\n"
            f"Before: {before_errors} error(s) in {len(outcome.items)} image(s).\n"
            f"Repaired in place: {', '.join(repaired) or 'none'} ({outcome.copied} object version(s) "
            "copied forward, nothing deleted).\n"
            f"Not repairable from S3 versions: {', '.join(lost) or 'none'}.\n"
            f"After: {after.summary['errors']} error(s)"
            + (f"; registry restarted ({outcome.registry_restart})" if outcome.registry_restart else "")
            + ".\n",
        )
    return doc
