"""The integrity audit: every tag's closure, its history, housekeeping and the bucket's posture.

``audit_model`` holds the rules: pure functions over the version-aware model (``RegistryModel``)
plus manifest bodies read through a ``ManifestSource`` — no S3 client in sight, so tests can build
the model directly. ``run_audit`` walks the bucket once, prefetches manifests in parallel and calls
the rules; deep mode streams blobs through sha256.

Costs: ceil(versions / 1000) list requests + one GET per distinct manifest (current and historical)
+ one GET per link whose ETag does not identify its digest + 5 bucket-posture reads (+ deep reads).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from regvault.audit.findings import (
    ERROR,
    SEVERITY_ORDER,
    WARNING,
    AuditReport,
    Finding,
    HistoryEntry,
    TagReport,
)
from regvault.errors import InvalidInput, NoRegistryFound
from regvault.images.closure import LinkReader, ManifestSource, Planner, has_data, is_live, tag_pointers
from regvault.storage.digest import Digest
from regvault.storage.inventory import KeyHistory, walk
from regvault.storage.layout import (
    BlobData,
    LayerLink,
    RegistryLayout,
    RevisionLink,
    TagCurrentLink,
    TagIndexLink,
)
from regvault.storage.model import RegistryModel, RepositoryKeys, TagKeys, link_candidates
from regvault.storage.store import BucketPosture

DEFAULT_GRACE = timedelta(hours=2)


# --- the rules ---------------------------------------------------------------------------------


@dataclass
class AuditOptions:
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    grace: timedelta = DEFAULT_GRACE
    workers: int = 8


class Rules:
    def __init__(
        self, model: RegistryModel, manifests: ManifestSource, links: LinkReader, options: AuditOptions
    ) -> None:
        self.model = model
        self.layout = model.layout
        self.manifests = manifests
        self.links = links
        self.options = options
        self.findings: list[Finding] = []
        self.checked_links: set[str] = set()
        self.missing_manifests: set[tuple[str, Digest]] = set()  # reported through a live tag
        self.planner = Planner(model, manifests, links)

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
        self.checked_links.add(history.key)
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
            self.missing_manifests.add((repo.name, digest))
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
                older = [
                    v
                    for v in tag.current.data_versions[1:]
                    if isinstance(self.links.resolve(tag.current, v, link_candidates(repo, tag)), Digest)
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

    # --- repository-wide and bucket-wide rules -------------------------------------------
    def untagged_manifests(self, repo: RepositoryKeys) -> None:
        for digest, revision in repo.revisions.items():
            if (repo.name, digest) in self.missing_manifests:
                continue
            if is_live(revision) and not is_live(self.model.blobs.get(digest)):
                self.add(
                    "MANIFEST_MISSING",
                    f"{repo.name} lists manifest {digest.short} (pull by digest), but it is not in blobs/",
                    repository=repo.name,
                    digest=str(digest),
                    key=self.layout.key(BlobData(digest)),
                    recoverable=self.manifests.best_recoverable(digest) is not None,
                )

    def other_links(self, repo: RepositoryKeys) -> None:
        """Links outside live closures: malformed ones are warnings (no current pull breaks)."""
        groups: list[tuple[Digest, KeyHistory]] = [*repo.layers.items(), *repo.revisions.items()]
        for tag in repo.tags.values():
            groups += list(tag.index.items())
        for digest, history in groups:
            if history.key in self.checked_links or history.current is None:
                continue
            verdict = self.links.holds(history, history.current, digest)
            if verdict is not True:
                self.add(
                    "LINK_MALFORMED",
                    f"link is malformed: {verdict}",
                    repository=repo.name,
                    digest=str(digest),
                    key=history.key,
                    recoverable=None,
                    severity=WARNING,
                )

    def housekeeping(self, referenced: set[Digest]) -> None:
        cutoff = self.options.now - self.options.grace
        for digest, history in self.model.blobs.items():
            current = history.current
            if current is None:
                continue
            if len(history.data_versions) > 1 and len({(v.size, v.etag) for v in history.data_versions}) > 1:
                self.add(
                    "BLOB_OVERWRITTEN",
                    f"blob {digest.short} was overwritten {len(history.data_versions) - 1} time(s); "
                    "run --deep to verify it",
                    digest=str(digest),
                    key=history.key,
                    recoverable=None,
                )
            if digest not in referenced and current.last_modified < cutoff:
                self.add(
                    "ORPHAN_BLOB",
                    f"blob {digest.short} ({current.size} bytes) is referenced by no manifest",
                    digest=str(digest),
                    key=history.key,
                    recoverable=True,
                )
        for repo in self.model.repositories.values():
            newest: dict[str, datetime | None] = {u: s.newest_live for u, s in repo.upload_summaries.items()}
            for upload_id, histories in repo.uploads.items():
                times = [h.current.last_modified for h in histories if h.current is not None]
                newest[upload_id] = max(times) if times else None
            for upload_id, newest_live in sorted(newest.items()):
                if newest_live is not None and newest_live < cutoff:
                    self.add(
                        "STALE_UPLOAD",
                        f"upload {upload_id} in {repo.name} untouched since before the grace window",
                        repository=repo.name,
                        key=f"{self.layout.repository_prefix(repo.name)}_uploads/{upload_id}/",
                        recoverable=None,
                    )
        for entry in self.model.unknown:
            if entry.history.current is not None:
                self.add("UNKNOWN_KEY", f"unrecognised key: {entry.entity.reason}", key=entry.history.key)


def referenced_digests(model: RegistryModel, manifests: ManifestSource) -> set[Digest]:
    """Every blob reachable from a live revision link of any repository (what GC marks)."""
    referenced: set[Digest] = set()
    pending = [d for repo in model.repositories.values() for d, h in repo.revisions.items() if is_live(h)]
    while pending:
        digest = pending.pop()
        if digest in referenced:
            continue
        referenced.add(digest)
        read = manifests.current(digest)
        if read is None or read.manifest is None:
            continue
        pending += [c.digest for c in read.manifest.children]
        if read.manifest.subject is not None:
            pass  # a referrer keeps itself, not its subject
        referenced.update(b.digest for b in read.manifest.blobs)
    return referenced


def posture_findings(posture: BucketPosture, layout: RegistryLayout) -> tuple[list[Finding], int | None]:
    """Bucket-level findings and the recovery window in days (None: versions never expire)."""
    out: list[Finding] = []
    if posture.versioning != "Enabled" and "GetBucketVersioning" not in posture.unreadable:
        state = (posture.versioning or "never enabled").lower()
        out.append(
            Finding(
                "BUCKET_VERSIONING_OFF",
                f"bucket versioning is {state}: a delete or overwrite loses data for good",
            )
        )
    window: int | None = None
    for rule in posture.lifecycle_rules or []:
        if rule.get("Status") != "Enabled" or not _rule_applies(rule, layout.prefix):
            continue
        noncurrent = rule.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays")
        if isinstance(noncurrent, int):
            window = noncurrent if window is None else min(window, noncurrent)
        expiration = rule.get("Expiration", {})
        if "Days" in expiration or "Date" in expiration:
            out.append(
                Finding(
                    "CURRENT_EXPIRATION",
                    f"lifecycle rule {rule.get('ID', '?')!r} expires current registry objects",
                    key=_rule_prefix(rule),
                )
            )
    if window is not None:
        out.append(
            Finding(
                "NONCURRENT_EXPIRATION",
                f"noncurrent versions expire after {window} days: older images cannot be restored after that",
                recoverable=None,
            )
        )
    if posture.encryption_rules is not None and not posture.encryption_rules:
        out.append(Finding("BUCKET_NOT_ENCRYPTED", "the bucket has no default encryption"))
    pab = posture.public_access_block
    flags = ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")
    if pab is not None and not all(pab.get(f) for f in flags):
        off = [f for f in flags if not pab.get(f)]
        out.append(Finding("PUBLIC_ACCESS_NOT_BLOCKED", f"public access block is missing: {', '.join(off)}"))
    if "GetBucketPolicy" not in posture.unreadable and not _denies_insecure_transport(posture.policy):
        out.append(
            Finding(
                "INSECURE_TRANSPORT_ALLOWED",
                "no bucket policy statement denies requests with aws:SecureTransport false",
            )
        )
    for operation in posture.unreadable:
        out.append(
            Finding("POSTURE_UNREADABLE", f"access denied for s3:{operation}; that setting was not checked")
        )
    return out, window


def _rule_prefix(rule: dict[str, Any]) -> str:
    filt = rule.get("Filter") or {}
    prefix = filt.get("Prefix")
    if prefix is None and isinstance(filt.get("And"), dict):
        prefix = filt["And"].get("Prefix")
    if prefix is None:
        prefix = rule.get("Prefix", "")
    return str(prefix or "")


def _rule_applies(rule: dict[str, Any], registry_prefix: str) -> bool:
    prefix = _rule_prefix(rule)
    if "/_uploads/" in prefix:
        return False  # upload scratch: expiring it fast is the recommended setup
    return registry_prefix.startswith(prefix) or prefix.startswith(registry_prefix)


def _denies_insecure_transport(policy: str | None) -> bool:
    if not policy:
        return False
    try:
        doc = json.loads(policy)
    except json.JSONDecodeError:
        return False
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    for st in statements:
        if not isinstance(st, dict) or st.get("Effect") != "Deny":
            continue
        actions = st.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if not any(a in ("s3:*", "*") for a in actions):
            continue
        cond = st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
        if str(cond).lower() in ("false", "['false']"):
            return True
    return False


def audit_model(
    model: RegistryModel,
    manifests: ManifestSource,
    links: LinkReader,
    posture: BucketPosture | None,
    options: AuditOptions,
) -> tuple[list[Finding], list[TagReport], int | None]:
    rules = Rules(model, manifests, links, options)
    window = None
    if posture is not None:
        found, window = posture_findings(posture, model.layout)
        rules.findings += found
    tags: list[TagReport] = []
    for name in model.repository_names():
        repo = model.repositories[name]
        for tag_name in sorted(repo.tags):
            tags.append(rules.audit_tag(repo, repo.tags[tag_name]))
        rules.untagged_manifests(repo)
        rules.other_links(repo)
    rules.housekeeping(referenced_digests(model, manifests))
    findings = sorted(
        rules.findings,
        key=lambda f: (SEVERITY_ORDER[f.severity], f.code, f.repository or "", f.tag or "", f.key or ""),
    )
    return findings, tags, window


# --- deep mode ---------------------------------------------------------------------------------


class BlobHasher(Protocol):
    def stream_sha256(
        self, key: str, version_id: str | None = None, chunk_size: int = ...
    ) -> tuple[str, int]: ...


def deep_verify(
    hasher: BlobHasher,
    model: RegistryModel,
    manifests: ManifestSource,
    sample: float,
    workers: int,
    rng: random.Random | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Finding], int, int]:
    """Stream every referenced live blob through sha256 (or a sample); (findings, blobs, bytes)."""
    referenced = referenced_digests(model, manifests)
    targets = sorted(
        d
        for d in referenced
        if d.algorithm == "sha256"
        and is_live(model.blobs.get(d))
        and (d, model.blobs[d].current.version_id) not in manifests.cache  # type: ignore[union-attr]
    )
    if sample < 1.0:
        rng = rng or random.Random()  # noqa: S311 - sampling, not secrets
        targets = [d for d in targets if rng.random() < sample]
    findings: list[Finding] = []
    total = 0
    done = 0

    def check(digest: Digest) -> tuple[Digest, str, int]:
        history = model.blobs[digest]
        assert history.current is not None
        hexdigest, size = hasher.stream_sha256(history.key, history.current.version_id)
        return digest, hexdigest, size

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for digest, hexdigest, size in pool.map(check, targets):
            total += size
            done += 1
            if progress:
                progress(done, len(targets))
            if hexdigest != digest.hex:
                history = model.blobs[digest]
                findings.append(
                    Finding(
                        "BLOB_DIGEST_MISMATCH",
                        f"blob {digest.short} hashes to sha256:{hexdigest[:12]}",
                        digest=str(digest),
                        key=history.key,
                        recoverable=len(history.data_versions) > 1 or None,
                    )
                )
    return findings, len(targets), total


# --- the whole run -----------------------------------------------------------------------------


@dataclass
class AuditRequest:
    deep: bool = False
    sample: float = 1.0
    grace: timedelta = DEFAULT_GRACE
    workers: int = 8
    page_size: int = 1000
    manifest_cache: Any = None  # a ManifestCache: manifest versions read by an earlier audit

    def __post_init__(self) -> None:
        if not 0.0 < self.sample <= 1.0:
            raise InvalidInput("--sample must be a fraction in (0, 1]")
        if self.grace < timedelta(0):
            raise InvalidInput("the grace window cannot be negative")
        if not 1 <= self.page_size <= 1000:
            raise InvalidInput("page size must be between 1 and 1000")
        if not 1 <= self.workers <= 64:
            raise InvalidInput("workers must be between 1 and 64")


Progress = Callable[[str, int, int], None]  # (phase, done, total or 0)


def run_audit(
    store: Any, layout: RegistryLayout, request: AuditRequest, progress: Progress | None = None
) -> AuditReport:
    started = datetime.now(UTC)
    requests_before = store.requests.total  # a warm Lambda reuses its store
    store.check_bucket()
    posture = store.posture()
    inventory = walk(
        store,
        layout.prefix,
        scratch=layout.upload_group,
        page_size=request.page_size,
        progress=(lambda pages, versions: progress("listing object versions", versions, 0))
        if progress
        else None,
    )
    if not len(inventory):
        raise NoRegistryFound(
            f"no registry under root {layout.root or '(empty)'!r} in bucket {store.bucket!r} "
            f"(nothing below {layout.prefix!r}): check --root / REGVAULT_ROOT"
        )
    model = RegistryModel(inventory, layout)
    manifests = ManifestSource(store, model, request.manifest_cache)
    # prefetch in parallel: every live revision, then the children they reference, then history
    live_revisions = {d for r in model.repositories.values() for d, h in r.revisions.items() if is_live(h)}
    manifests.prefetch(live_revisions, request.workers)
    children = {
        c.digest for read in list(manifests.cache.values()) if read.manifest for c in read.manifest.children
    }
    manifests.prefetch(children, request.workers)
    historical = {d for r in model.repositories.values() for d in r.revisions} | {
        d for r in model.repositories.values() for t in r.tags.values() for d in t.index
    }
    manifests.prefetch(historical, request.workers, historical=True)
    if progress:
        progress("reading manifests", len(manifests.cache), len(manifests.cache))
    options = AuditOptions(grace=request.grace, workers=request.workers)
    findings, tags, window = audit_model(model, manifests, LinkReader(store), posture, options)
    blobs_hashed = bytes_hashed = 0
    if request.deep:
        deep_findings, blobs_hashed, bytes_hashed = deep_verify(
            store,
            model,
            manifests,
            request.sample,
            request.workers,
            progress=(lambda done, total: progress("verifying blobs (sha256)", done, total))
            if progress
            else None,
        )
        findings = sorted(
            findings + deep_findings,
            key=lambda f: (SEVERITY_ORDER[f.severity], f.code, f.repository or "", f.tag or "", f.key or ""),
        )
    finished = datetime.now(UTC)
    summary = {
        "repositories": len(model.repositories),
        "tags": sum(1 for t in tags if not t.deleted),
        "deleted_tags": sum(1 for t in tags if t.deleted),
        "manifests": len({d for d, _ in manifests.cache}),
        "manifests_from_cache": request.manifest_cache.hits if request.manifest_cache is not None else 0,
        "blobs": sum(1 for h in model.blobs.values() if h.current is not None),
        "object_versions": inventory.object_versions,
        "delete_markers": inventory.delete_markers,
        "s3_requests": store.requests.total - requests_before,
        "errors": sum(1 for f in findings if f.severity == ERROR),
        "warnings": sum(1 for f in findings if f.severity == WARNING),
        "infos": sum(1 for f in findings if f.severity == "info"),
        "deep": request.deep,
        "blobs_verified": blobs_hashed,
        "bytes_verified": bytes_hashed,
        "duration_s": round((finished - started).total_seconds(), 3),
    }
    return AuditReport(store.bucket, layout.root, started, finished, summary, findings, tags, window)
