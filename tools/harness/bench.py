"""``make bench``: regvault side by side with what a user would otherwise run, on one machine.

- audit_vs_gc:     ``regvault audit`` vs ``docker-registry garbage-collect --dry-run`` on the same
                   generated registry in the same emulator (wall, S3 requests by API, peak RSS, CPU per
                   object version), directly and through a 20 ms-per-request loopback proxy.
- deep_vs_hashlib: ``regvault audit --deep``'s blob verification (S3Store.stream_sha256 on a thread
                   pool, as deep_verify runs it) vs plain ``hashlib.sha256`` over the same bytes.
- restore_vs_pit:  ``regvault restore REPO:TAG --at T --apply`` and ``regvault restore REPO --at T
                   --apply`` vs ``s3-pit-restore`` restoring that repository's prefix to the same time.

Every measured tool runs as its own process: peak RSS and CPU come from ``wait4``; regvault's S3
requests from its botocore ``before-send`` counter, the peers' at the emulator (its request log) or
at the proxy. Writes ``results.json`` (one row per figure), ``RESULTS.md`` and ``bench.png``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.emulator import ACCESS_KEY, SECRET_KEY, S3Emulator
from harness.generator import Workload, synthetic, write_preload
from harness.latency import LatencyProxy, classify
from harness.processes import Supervisor
from harness.registry import RegistryServer, registry_binary
from regvault.storage.digest import Digest
from regvault.storage.layout import BlobData, RegistryLayout, TagCurrentLink

LAYOUT = RegistryLayout("")  # the benchmarks' registries live at the bucket's root

BUCKET = "bench-registry"
SHARDED = ["audit", "--format", "json", "--shards", "256"]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
LOG_LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/1\.[01]" (?P<status>\d{3})')


@dataclass
class Run:
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    requests: Counter[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())


@dataclass
class Results:
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def add(
        self,
        benchmark: str,
        metric: str,
        size: int,
        regvault: float,
        peer: float | None,
        higher_is_better: bool = False,
        **extra: Any,
    ) -> None:
        ratio = None
        if peer is not None and regvault and (peer or not higher_is_better):
            ratio = regvault / peer if higher_is_better else peer / regvault
        self.rows.append(
            {
                "benchmark": benchmark,
                "metric": metric,
                "size": size,
                "regvault": round(regvault, 4),
                "peer": None if peer is None else round(peer, 4),
                "ratio": None if ratio is None else round(ratio, 3),
                **extra,
            }
        )


# Runs the measured command from a fresh, small process. On Linux a child's peak RSS (ru_maxrss) also
# counts the memory of the process it was spawned from up to its exec, so spawning straight from this
# (large) benchmark process would report the benchmark's own peak as the tool's.
LAUNCHER = """
import json, os, sys, time
argv, report = json.loads(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
pid = os.posix_spawnp(argv[0], argv, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as out:
    json.dump({"wall_s": time.perf_counter() - started, "maxrss_kb": usage.ru_maxrss,
               "cpu_s": usage.ru_utime + usage.ru_stime, "code": os.waitstatus_to_exitcode(status)}, out)
"""


def measure(argv: list[str], env: dict[str, str], timeout: float = 7200) -> Run:
    """Run one process; its wall time, and its own peak RSS and CPU time (wait4)."""
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        report = Path(handle.name)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, json.dumps(argv), str(report)],
            env=env,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise RuntimeError(f"{argv[0]} ran longer than {timeout:.0f}s") from None
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"the launcher failed for {argv[0]}: {stderr[-2000:]}")
        figures = json.loads(report.read_text())
    finally:
        report.unlink(missing_ok=True)
        out.close()
        err.close()
    return Run(
        wall_s=figures["wall_s"],
        peak_rss_mb=figures["maxrss_kb"] / 1024,
        cpu_s=figures["cpu_s"],
        requests=Counter(),
        returncode=figures["code"],
        stdout=stdout,
        stderr=stderr,
    )


class EmulatorLog:
    """Requests the emulator served, by S3 API, read from its werkzeug request log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size

    def since_mark(self) -> Counter[str]:
        with self.path.open("rb") as log:
            log.seek(self.offset)
            text = log.read().decode(errors="replace")
        counts: Counter[str] = Counter()
        text = ANSI.sub("", text)  # werkzeug colours some lines (206, 404, …)
        for match in LOG_LINE.finditer(text):
            if not match["target"].startswith("/moto-api"):
                counts[classify(match["method"], match["target"])] += 1
        return counts


def _regvault(argv: list[str], env: dict[str, str], workdir: Path) -> Run:
    """A regvault CLI command in its own process, its S3 requests counted by its botocore hook."""
    counts = workdir / f"requests-{time.monotonic_ns()}.json"
    child = [sys.executable, "-m", "harness.bench_child", str(counts), *argv]
    run = measure(child, env)
    if run.returncode not in (0, 1):
        raise RuntimeError(f"regvault {' '.join(argv)} failed ({run.returncode}): {run.stderr[-2000:]}")
    run.requests = Counter(json.loads(counts.read_text()))
    return run


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix="regvault-bench-"))
        self.results = Results()
        self.workloads: dict[int, Workload] = {}
        self.targets: dict[int, tuple[str, str, str] | None] = {}
        self.versions: dict[int, int] = {}  # size asked -> object versions the registry holds
        self.gc_workloads: dict[int, Workload] = {}  # the GC comparison's registries (with referrers)

    def log(self, message: str) -> None:
        print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    def env_for(self, endpoint: str) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("AWS_PROFILE", "AWS_CA_BUNDLE"):
            env.pop(name, None)
        env.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_REGION="us-east-1",
            REGVAULT_BUCKET=BUCKET,
            REGVAULT_ROOT="",
        )
        return env

    def preload(self, size: int) -> Path:
        """The generated registry of ``size`` versions as a preload file (its workload and restore
        target kept in ``self.workloads`` / ``self.targets``)."""
        path = self.workdir / f"registry-{size}.pickle"
        if not path.exists():
            self.log(f"generating a registry of {size:,} object versions")
            sim, workload = synthetic(size, seed=self.args.seed)
            self.versions[size] = write_preload(path, BUCKET, sim.ops)
            self.workloads[size] = workload
            self.targets[size] = restore_target(sim.ops, workload.midpoint)
            del sim
        return path

    # --- audit vs garbage-collect --dry-run ---------------------------------------------------------

    def gc_config(self, supervisor: Supervisor, emulator: Any, name: str) -> Path:
        """The registry's config for this endpoint (the server started once, then stopped: GC runs
        alone, with no upload purging or other background requests)."""
        workdir = self.workdir / name
        workdir.mkdir(exist_ok=True)
        server = RegistryServer(supervisor, workdir, emulator, BUCKET)
        if server.proc is not None:
            supervisor.stop(server.proc)
        return server.config_path

    def audit_vs_gc(self, size: int) -> None:
        preload = self.preload(size)
        with Supervisor(self.workdir / f"audit-{size}") as supervisor:
            (self.workdir / f"audit-{size}").mkdir(exist_ok=True)
            self.log(f"audit vs gc at {size:,} versions: loading the emulator")
            emulator = S3Emulator(supervisor, preload=preload)
            log = EmulatorLog(supervisor.workdir / "emulator.log")
            config = self.gc_config(supervisor, emulator, f"gc-{size}")
            env = self.env_for(emulator.endpoint_url)
            cache_dir = self.workdir / f"cache-{size}"
            audit_argv = ["audit", "--format", "json", "--cache-dir", str(cache_dir)]
            audit = _regvault(audit_argv, env, self.workdir)  # cold: no cache yet, it is written
            warm = _regvault(audit_argv, env, self.workdir)  # the next (e.g. daily) audit
            sharded = _regvault([*SHARDED, "--workers", str(self.args.workers)], env, self.workdir)
            summary = json.loads(audit.stdout)["summary"]
            for other, what in ((warm, "with the manifest cache"), (sharded, "sharded")):
                if json.loads(other.stdout)["summary"]["errors"] != summary["errors"]:
                    raise RuntimeError(f"the audit {what} found something else than one walk")
            versions = self.versions[size]  # what the registry holds (the audit lists fewer: no scratch)
            manifests = int(summary["manifests"])
            self.log(
                f"  regvault audit: {audit.wall_s:.1f}s, {audit.total_requests} requests, "
                f"{audit.peak_rss_mb:.0f} MB; with the manifest cache {warm.wall_s:.1f}s, "
                f"{warm.total_requests} requests"
            )
            gc: Run | None = None
            if size <= self.args.gc_max_versions:
                log.mark()
                gc = measure(
                    [registry_binary(), "garbage-collect", "--dry-run", str(config)], RegistryServer.env()
                )
                gc.requests = log.since_mark()
                if gc.returncode != 0:
                    raise RuntimeError(f"garbage-collect --dry-run failed: {gc.stderr[-2000:]}")
                self.log(f"  garbage-collect --dry-run: {gc.wall_s:.1f}s, {gc.total_requests} requests")
            else:
                self.results.notes.append(
                    f"garbage-collect --dry-run not run at {size:,} versions (above --gc-max-versions "
                    f"{self.args.gc_max_versions:,}): extrapolate from the requests per version below."
                )
            self._audit_rows("audit_vs_gc", size, audit, gc, versions, manifests)
            self._audit_rows("audit_warm_vs_gc", size, warm, gc, versions, manifests)
            self._audit_rows("audit_sharded_vs_gc", size, sharded, gc, versions, manifests)
            lower = math.ceil(versions / 1000) + manifests
            self.results.add(
                "audit_requests_vs_lower_bound",
                "s3_requests",
                size,
                audit.total_requests,
                lower,
                lower_bound=lower,
                posture_reads=audit.requests.get("GetBucketVersioning", 0)
                + audit.requests.get("GetBucketLifecycleConfiguration", 0)
                + audit.requests.get("GetBucketEncryption", 0)
                + audit.requests.get("GetPublicAccessBlock", 0)
                + audit.requests.get("GetBucketPolicy", 0)
                + audit.requests.get("HeadBucket", 0),
            )
            if size <= self.args.latency_max_versions and self.args.latency_ms > 0:
                self._with_latency(size, emulator, supervisor, versions, manifests, cache_dir)
            elif size <= self.args.latency_regvault_max_versions and self.args.latency_ms > 0 and gc:
                self._regvault_with_latency(size, emulator, gc, versions, manifests)

    def _audit_rows(
        self,
        benchmark: str,
        size: int,
        audit: Run,
        gc: Run | None,
        versions: int,
        manifests: int,
        projected: bool = False,
    ) -> None:
        r = self.results
        r.add(
            benchmark, "wall_s", size, audit.wall_s, gc.wall_s if gc else None,
            versions=versions, manifests=manifests, projected=projected,
        )  # fmt: skip
        r.add(
            benchmark, "s3_requests", size, audit.total_requests, gc.total_requests if gc else None,
            regvault_by_api=dict(audit.requests), peer_by_api=dict(gc.requests) if gc else None,
        )  # fmt: skip
        r.add(benchmark, "peak_rss_mb", size, audit.peak_rss_mb, gc.peak_rss_mb if gc else None)
        r.add(
            benchmark, "cpu_us_per_version", size, audit.cpu_s / versions * 1e6,
            gc.cpu_s / versions * 1e6 if gc else None,
        )  # fmt: skip

    def _with_latency(
        self,
        size: int,
        emulator: S3Emulator,
        supervisor: Supervisor,
        versions: int,
        manifests: int,
        cache_dir: Path,
    ) -> None:
        delay = self.args.latency_ms / 1000
        proxy = LatencyProxy(emulator.endpoint_url, delay)
        try:
            config = self.gc_config(supervisor, proxy, f"gc-proxy-{size}")
            env = self.env_for(proxy.endpoint_url)
            audit = _regvault(["audit", "--format", "json"], env, self.workdir)
            warm = _regvault(["audit", "--format", "json", "--cache-dir", str(cache_dir)], env, self.workdir)
            sharded = _regvault([*SHARDED, "--workers", str(self.args.workers)], env, self.workdir)
            proxy.take_counts()
            gc = measure(
                [registry_binary(), "garbage-collect", "--dry-run", str(config)], RegistryServer.env()
            )
            gc.requests = proxy.take_counts()
            self.log(
                f"  with {self.args.latency_ms:g} ms/request: audit {audit.wall_s:.1f}s, gc {gc.wall_s:.1f}s"
            )
            suffix = f"{self.args.latency_ms:g}ms"
            self._audit_rows(f"audit_vs_gc_{suffix}", size, audit, gc, versions, manifests)
            self._audit_rows(f"audit_warm_vs_gc_{suffix}", size, warm, gc, versions, manifests)
            self._audit_rows(f"audit_sharded_vs_gc_{suffix}", size, sharded, gc, versions, manifests)
        finally:
            proxy.close()

    def _regvault_with_latency(
        self, size: int, emulator: S3Emulator, gc: Run, versions: int, manifests: int
    ) -> None:
        """regvault through the proxy at a size where GC through it would take hours: GC's wall time is
        projected as its emulator time plus one delay per request (it sends them one at a time)."""
        delay = self.args.latency_ms / 1000
        proxy = LatencyProxy(emulator.endpoint_url, delay)
        try:
            env = self.env_for(proxy.endpoint_url)
            audit = _regvault(["audit", "--format", "json"], env, self.workdir)
            sharded = _regvault([*SHARDED, "--workers", str(self.args.workers)], env, self.workdir)
        finally:
            proxy.close()
        projected = Run(gc.wall_s + gc.total_requests * delay, gc.peak_rss_mb, gc.cpu_s, gc.requests, 0)
        suffix = f"{self.args.latency_ms:g}ms"
        self.log(
            f"  with {self.args.latency_ms:g} ms/request: audit {audit.wall_s:.1f}s, sharded "
            f"{sharded.wall_s:.1f}s, gc projected {projected.wall_s:.0f}s"
        )
        self._audit_rows(f"audit_vs_gc_{suffix}", size, audit, projected, versions, manifests, projected=True)
        self._audit_rows(
            f"audit_sharded_vs_gc_{suffix}", size, sharded, projected, versions, manifests, projected=True
        )
        self.results.notes.append(
            f"At {size:,} versions garbage-collect --dry-run did not run through the {suffix} proxy: "
            f"its wall time there is projected as its emulator time ({gc.wall_s:.0f} s) + "
            f"{gc.total_requests:,} requests x {suffix} sent one at a time = {projected.wall_s:.0f} s "
            "(rows marked projected)."
        )

    # --- regvault gc vs docker-registry garbage-collect --delete-untagged ----------------------------

    def gc_vs_distribution(self, size: int) -> None:
        """Both collectors, each on a fresh copy of the same generated registry (indexes, OCI referrers,
        weekly plain GC so untagged manifests pile up): objects and bytes freed, S3 requests, wall time,
        and what still pulls afterwards through the real registry (every tag, every referrer of a
        tagged image), in the emulator and through the latency proxy."""
        path = self.workdir / f"registry-gc-{size}.pickle"
        self.log(f"gc vs distribution at {size:,} versions: generating (indexes, referrers)")
        sim, workload = synthetic(size, seed=self.args.seed, collect_untagged=False, referrers=0.15)
        versions = write_preload(path, BUCKET, sim.ops)
        tags, referrers = sim.tagged()
        del sim
        extra: dict[str, Any] = {"versions": versions, "tags": len(tags), "referrers": len(referrers)}
        delays = [0.0] + ([self.args.latency_ms / 1000] if self.args.latency_ms > 0 else [])
        for delay in delays:
            suffix = f"_{self.args.latency_ms:g}ms" if delay else ""
            runs: dict[str, tuple[Run, dict[str, int]]] = {}
            for tool in ("distribution", "regvault"):
                name = f"gc-{tool}-{size}{suffix}"
                with Supervisor(self.workdir / name) as supervisor:
                    supervisor.workdir.mkdir(exist_ok=True)
                    emulator = S3Emulator(supervisor, preload=path)
                    log = EmulatorLog(supervisor.workdir / "emulator.log")
                    proxy = LatencyProxy(emulator.endpoint_url, delay) if delay else None
                    try:
                        before = current_objects(emulator.endpoint_url)
                        if tool == "distribution":
                            config = self.gc_config(supervisor, proxy or emulator, f"config-{name}")
                            log.mark()
                            if proxy:
                                proxy.take_counts()
                            run = measure(
                                [registry_binary(), "garbage-collect", "--delete-untagged", str(config)],
                                RegistryServer.env(),
                            )
                            if run.returncode != 0:
                                raise RuntimeError(f"garbage-collect failed: {run.stderr[-2000:]}")
                            run.requests = proxy.take_counts() if proxy else log.since_mark()
                        else:
                            env = self.env_for(proxy.endpoint_url if proxy else emulator.endpoint_url)
                            argv = ["gc", "--delete-untagged", "--apply", "--format", "json"]
                            run = _regvault([*argv, "--workers", str(self.args.workers)], env, self.workdir)
                            if run.returncode != 0:
                                raise RuntimeError(f"regvault gc failed: {run.stderr[-2000:]}")
                    finally:
                        if proxy:
                            proxy.close()
                    after = current_objects(emulator.endpoint_url)
                    figures = {
                        "objects_freed": before[0] - after[0],
                        "bytes_freed": before[1] - after[1],
                    }
                    if not delay:  # what still pulls: the same outcome whatever the latency
                        (supervisor.workdir / "serve").mkdir(exist_ok=True)
                        server = RegistryServer(
                            supervisor, supervisor.workdir / "serve", emulator, BUCKET, auth=False
                        )
                        figures["tags_pulling"], figures["referrers_pulling"] = pull_all(
                            server, tags, referrers, self.args.workers
                        )
                    runs[tool] = (run, figures)
                self.log(
                    f"  {tool}{suffix}: {run.wall_s:.1f}s, {run.total_requests} requests, "
                    + ", ".join(f"{k} {v:,}" for k, v in figures.items())
                )
            (ours, mine), (peer, theirs) = runs["regvault"], runs["distribution"]
            bench, r = f"gc_vs_distribution{suffix}", self.results
            r.add(bench, "wall_s", size, ours.wall_s, peer.wall_s, **extra)
            r.add(
                bench, "s3_requests", size, ours.total_requests, peer.total_requests,
                regvault_by_api=dict(ours.requests), peer_by_api=dict(peer.requests),
            )  # fmt: skip
            r.add(bench, "peak_rss_mb", size, ours.peak_rss_mb, peer.peak_rss_mb)
            for metric in mine:
                r.add(bench, metric, size, mine[metric], theirs[metric], higher_is_better=True, **extra)
            if not delay:
                self.gc_workloads[size] = workload

    # --- the audit on a simulated registry (no emulator): sizes no emulator holds -------------------

    def simulate(self, size: int) -> None:
        """A generated registry served from memory (harness.simstore) through the distributed audit's
        pieces: each key range listed as a worker lists it, its part's size and peak memory measured
        (tracemalloc), then the merge and the rules as the reduce step runs them."""
        import gc as collector
        import tracemalloc

        from harness.simstore import SimulatedStore
        from regvault.audit.distributed import ShardItem, plan_run
        from regvault.audit.run import AuditRequest, audit_inventory, list_inventory
        from regvault.storage.inventory import repository_bounds
        from regvault.storage.parts import encode_part

        self.log(f"simulated audit at {size:,} versions: generating")
        sim, _ = synthetic(size, seed=self.args.seed)
        store = SimulatedStore(sim.ops)
        del sim
        collector.collect()
        request = AuditRequest()
        plan = plan_run(
            LAYOUT, "simulated", 256, repositories=repository_bounds(store, LAYOUT.repositories_prefix)
        )
        parts, shard_peaks, shard_cpu, part_bytes, shard_requests = [], [], [], [], []
        started_cpu = time.process_time()
        for raw in plan["items"]:
            item = ShardItem.parse(raw)
            after, through = (None if b is None else LAYOUT.prefix + b for b in (item.after, item.through))
            tracemalloc.start()
            cpu, before = time.process_time(), store.requests.total
            part = list_inventory(store, LAYOUT, request, after=after, through=through)
            shard_cpu.append(time.process_time() - cpu)
            shard_requests.append(store.requests.total - before)
            part_bytes.append(len(encode_part(part)))
            shard_peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
            parts.append(part)
        listing_requests = store.requests.total
        self.log(f"  {len(parts)} ranges listed: {listing_requests:,} requests; merging and auditing")
        tracemalloc.start()
        cpu = time.process_time()
        merged = parts[0]
        for part in parts[1:]:
            merged.merge(part)
        del parts
        report = audit_inventory(store, LAYOUT, merged, store.posture(), request, datetime.now(UTC), 0)
        merge_cpu = time.process_time() - cpu
        merge_peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        total_cpu = time.process_time() - started_cpu
        requests = store.requests.total
        delay = self.args.latency_ms / 1000
        workers = self.args.workers
        # one Lambda: ranges listed by --workers threads, then manifests read by as many
        one_lambda = requests * delay / workers + total_cpu
        # Distributed Map: the slowest range alone, then the reduce's reads and rules
        slowest = max(c + n * delay for c, n in zip(shard_cpu, shard_requests, strict=True))
        reduce_requests = requests - listing_requests
        distributed = slowest + reduce_requests * delay / workers + merge_cpu
        r = self.results
        extra: dict[str, Any] = {"ranges": len(shard_peaks), "object_versions": store.object_versions}
        r.add(
            "audit_simulated",
            "cpu_us_per_version",
            size,
            total_cpu / store.object_versions * 1e6,
            None,
            **extra,
        )
        r.add("audit_simulated", "s3_requests", size, requests, None, listing=listing_requests, **extra)
        r.add("audit_simulated", "peak_mb_largest_range", size, max(shard_peaks), None, **extra)
        r.add("audit_simulated", "part_mb_largest", size, max(part_bytes) / 2**20, None, **extra)
        r.add("audit_simulated", "part_mb_total", size, sum(part_bytes) / 2**20, None, **extra)
        r.add("audit_simulated", "peak_mb_merge_and_rules", size, merge_peak, None, **extra)
        r.add(
            "audit_simulated",
            f"projected_wall_s_one_lambda_{self.args.latency_ms:g}ms",
            size,
            one_lambda,
            None,
        )
        r.add(
            "audit_simulated",
            f"projected_wall_s_distributed_{self.args.latency_ms:g}ms",
            size,
            distributed,
            None,
        )
        self.log(
            f"  {store.object_versions:,} versions: cpu {total_cpu:.0f}s, {requests:,} requests, range peak "
            f"{max(shard_peaks):.0f} MB, merge peak {merge_peak:.0f} MB, errors {report.summary['errors']}"
        )

    # --- deep verify vs hashlib ---------------------------------------------------------------------

    def deep_vs_hashlib(self) -> None:
        import random

        workers, count, blob_mib = self.args.workers, self.args.deep_blobs, self.args.deep_blob_mib
        total = blob_mib * count * 1024 * 1024
        mib = total / 1024 / 1024
        child = [sys.executable, "-m", "harness.bench_child"]
        # 1. regvault's verification path vs plain hashlib over the same bytes in memory
        memory = measure(
            [*child, "--deep-memory", str(workers), str(count), str(blob_mib), str(self.args.seed)],
            {**os.environ},
        )
        if memory.returncode != 0:
            raise RuntimeError(f"deep verify (memory) failed: {memory.stderr[-2000:]}")
        done = json.loads(memory.stdout)
        self.results.add(
            "deep_vs_hashlib", "throughput_mib_s", total,
            mib / done["seconds"], mib / done["hashlib_seconds"],
            higher_is_better=True, workers=workers, blobs=count, blob_mib=blob_mib, source="memory",
        )  # fmt: skip
        self.log(
            f"deep verify in memory: {mib / done['seconds']:.0f} MiB/s "
            f"vs hashlib {mib / done['hashlib_seconds']:.0f} MiB/s"
        )
        # 2. end to end from the emulator, vs the plain client (get_object().read() + hashlib)
        with Supervisor(self.workdir / "deep") as supervisor:
            (self.workdir / "deep").mkdir(exist_ok=True)
            emulator = S3Emulator(supervisor)
            s3 = emulator.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            rng = random.Random(self.args.seed)  # noqa: S311 - data, not secrets
            keys = []
            for _ in range(count):
                data = rng.randbytes(blob_mib * 1024 * 1024)
                key = LAYOUT.key(BlobData(Digest.of(data)))
                s3.put_object(Bucket=BUCKET, Key=key, Body=data)
                keys.append(key)
            env = self.env_for(emulator.endpoint_url)
            ours = measure([*child, "--deep", str(workers), *keys], env)
            raw = measure([*child, "--raw-client", *keys], env)
            for run in (ours, raw):
                if run.returncode != 0:
                    raise RuntimeError(f"deep verify (emulator) failed: {run.stderr[-2000:]}")
            ours_s, raw_s = json.loads(ours.stdout)["seconds"], json.loads(raw.stdout)["seconds"]
            self.results.add(
                "deep_vs_raw_client", "throughput_mib_s", total, mib / ours_s, mib / raw_s,
                higher_is_better=True, workers=workers, source="emulator",
            )  # fmt: skip
            self.results.add(
                "deep_vs_raw_client", "peak_rss_mb", total, ours.peak_rss_mb, raw.peak_rss_mb,
                chunk_mib=1, workers=workers, blob_mib=blob_mib,
            )  # fmt: skip
            self.log(
                f"deep verify from the emulator: {mib / ours_s:.0f} MiB/s (RSS {ours.peak_rss_mb:.0f} MB) vs "
                f"plain client {mib / raw_s:.0f} MiB/s (RSS {raw.peak_rss_mb:.0f} MB)"
            )

    # --- restore vs s3-pit-restore ------------------------------------------------------------------

    def restore_vs_pit(self, size: int) -> None:
        preload = self.preload(size)
        target = self.targets[size]
        if target is None:
            self.results.notes.append(f"restore_vs_pit at {size:,}: no tag changed after the midpoint")
            return
        repo, tag, when = target
        prefix = LAYOUT.repository_prefix(repo)
        pit = shutil.which("s3-pit-restore") or str(Path(sys.executable).parent / "s3-pit-restore")
        delays = [0.0] + ([self.args.latency_ms / 1000] if self.args.latency_ms > 0 else [])
        for delay in delays:
            suffix = "" if delay == 0 else f"_{self.args.latency_ms:g}ms"
            runs: dict[str, Run] = {}
            for name in ("tag", "repository", "pit"):
                with Supervisor(self.workdir / f"restore-{size}-{name}{suffix}") as supervisor:
                    supervisor.workdir.mkdir(exist_ok=True)
                    emulator = S3Emulator(supervisor, preload=preload)
                    log = EmulatorLog(supervisor.workdir / "emulator.log")
                    proxy = LatencyProxy(emulator.endpoint_url, delay) if delay else None
                    endpoint = proxy.endpoint_url if proxy else emulator.endpoint_url
                    env = self.env_for(endpoint)
                    try:
                        log.mark()
                        if name == "pit":
                            argv = [pit, "-b", BUCKET, "-B", BUCKET, "-p", prefix, "-P", prefix, "-t", when]
                            run = measure([sys.executable, *argv], env)
                            if run.returncode != 0:
                                raise RuntimeError(f"s3-pit-restore failed: {run.stderr[-2000:]}")
                            run.requests = proxy.take_counts() if proxy else log.since_mark()
                        else:
                            ref = f"{repo}:{tag}" if name == "tag" else repo
                            run = _regvault(
                                ["restore", ref, "--at", when, "--apply", "--format", "json"],
                                env,
                                self.workdir,
                            )
                            if run.returncode != 0:
                                raise RuntimeError(f"regvault restore failed: {run.stderr[-2000:]}")
                    finally:
                        if proxy:
                            proxy.close()
                    runs[name] = run
            pit_run = runs["pit"]
            for name in ("tag", "repository"):
                run = runs[name]
                bench = f"restore_vs_pit_{name}{suffix}"
                self.results.add(
                    bench, "wall_s", size, run.wall_s, pit_run.wall_s, repository=repo, tag=tag, at=when
                )
                self.results.add(
                    bench, "s3_requests", size, run.total_requests, pit_run.total_requests,
                    regvault_by_api=dict(run.requests), peer_by_api=dict(pit_run.requests),
                )  # fmt: skip
            self.log(
                f"restore at {size:,}{suffix}: tag {runs['tag'].total_requests} req / "
                f"repo {runs['repository'].total_requests} req / s3-pit-restore {pit_run.total_requests} req"
            )

    # --- output -------------------------------------------------------------------------------------

    def write(self, started: float, elapsed: float | None = None) -> None:
        from harness.bench_report import render

        elapsed = time.perf_counter() - started if elapsed is None else elapsed
        (self.out / "results.json").write_text(json.dumps(self.results.rows, indent=1) + "\n")
        meta = {"notes": self.results.notes, "elapsed_s": elapsed}
        (self.out / "notes.json").write_text(json.dumps(meta, indent=1) + "\n")
        render(self.results, self.args, self.out, machine(), elapsed, self.workloads, self.gc_workloads)

    def refresh(self, started: float, what: str) -> None:
        """Run one group of rows again into the last full run's results (its other rows, notes and
        generated-registry table kept): ``simulated`` (no emulator; changes with the code) or ``gc``."""
        rows = json.loads((self.out / "results.json").read_text())
        if what == "simulated":
            again = set(self.args.simulate_list)
            self.results.rows = [
                r for r in rows if r["benchmark"] != "audit_simulated" or r["size"] not in again
            ]
        else:
            again = set(self.args.gc_list)
            self.results.rows = [
                r
                for r in rows
                if not r["benchmark"].startswith("gc_vs_distribution") or r["size"] not in again
            ]
        elapsed = 0.0
        if (self.out / "notes.json").exists():
            meta = json.loads((self.out / "notes.json").read_text())
            self.results.notes, elapsed = list(meta["notes"]), float(meta["elapsed_s"])
        self.results.notes = [n for n in self.results.notes if f"The {what} rows at" not in n]
        for size in self.args.size_list:
            self.workloads[size] = synthetic(size, seed=self.args.seed)[1]
        if what != "gc":
            for size in {r["size"] for r in self.results.rows if r["benchmark"] == "gc_vs_distribution"}:
                self.gc_workloads[size] = synthetic(
                    size, seed=self.args.seed, collect_untagged=False, referrers=0.15
                )[1]
        for size in sorted(again):
            self.simulate(size) if what == "simulated" else self.gc_vs_distribution(size)
        took = (time.perf_counter() - started) / 60
        self.results.notes.append(
            f"The {what} rows at {', '.join(f'{n:,}' for n in sorted(again))} versions were run again on "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC with --refresh {what} ({took:.1f} min); every other "
            "row is from the full run."
        )
        self.write(started, elapsed)


def restore_target(ops: list[Any], when: float) -> tuple[str, str, str] | None:
    """The tag whose target changed most often after ``when`` (its repository has history to roll
    back), with ``when`` as an ISO time: what the restore comparison rolls back to."""
    at_when: dict[tuple[str, str], bytes] = {}
    changed: Counter[tuple[str, str]] = Counter()
    for op in ops:
        entity = LAYOUT.parse(op.key)
        if not isinstance(entity, TagCurrentLink) or op.body is None:
            continue
        name = (entity.repository, entity.tag)
        if op.at <= when:
            at_when[name] = op.body
        elif name in at_when and op.body != at_when[name]:
            changed[name] += 1
    if not changed:
        return None
    (repo, tag), _ = max(changed.items(), key=lambda item: (item[1], item[0]))
    return repo, tag, datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def current_objects(endpoint: str) -> tuple[int, int]:
    """(count, bytes) of the registry's current objects (regvault's own run record and lease, under
    ``regvault/``, left out), listed straight from the emulator."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    count = size = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=LAYOUT.prefix):
        for item in page.get("Contents", []):
            count += 1
            size += int(item["Size"])
    return count, size


def pull_all(
    server: RegistryServer, tags: list[tuple[str, str]], referrers: list[tuple[str, str]], workers: int
) -> tuple[int, int]:
    """How many tags, and referrers (by digest), pull whole through the real registry: manifest, index
    children and every blob, each digest checked (harness.distclient)."""
    from concurrent.futures import ThreadPoolExecutor

    from harness.distclient import DistributionClient, DistributionError

    client = DistributionClient(server.address, server.user, server.password)

    def pulls(ref: tuple[str, str]) -> bool:
        try:
            client.pull(*ref)
        except DistributionError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(pulls, tags)), sum(pool.map(pulls, referrers))


def machine() -> dict[str, str]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    from importlib.metadata import version

    registry = subprocess.run([registry_binary(), "--version"], capture_output=True, text=True, check=False)
    return {
        "cpu": cpu or platform.processor(),
        "cores": str(os.cpu_count()),
        "memory": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "moto": version("moto"),
        "boto3": version("boto3"),
        "s3-pit-restore": version("s3-pit-restore"),
        "docker-registry": registry.stdout.strip() or registry.stderr.strip(),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m harness.bench",
        description="Benchmarks: regvault audit/restore vs garbage-collect --dry-run and s3-pit-restore.",
    )
    parser.add_argument("--sizes", default="1000,10000,100000,1000000", help="object versions per registry")
    parser.add_argument("--gc-max-versions", type=int, default=1000000, help="largest size GC runs at")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="delay per request through the proxy")
    parser.add_argument(
        "--latency-max-versions", type=int, default=100000, help="largest size run through it"
    )
    parser.add_argument(
        "--latency-regvault-max-versions",
        type=int,
        default=1000000,
        help="largest size regvault runs through the proxy at (GC's time there projected)",
    )
    parser.add_argument(
        "--simulate-sizes",
        default="1000000,10000000",
        help="sizes of the simulated audit (harness.simstore: no emulator, no network)",
    )
    parser.add_argument(
        "--restore-sizes", default="10000,100000", help="sizes the restore comparison runs at"
    )
    parser.add_argument("--deep-blobs", type=int, default=16)
    parser.add_argument("--deep-blob-mib", type=int, default=16)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default="bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument(
        "--refresh",
        choices=("simulated", "gc"),
        help="run only these rows again (the simulated audit at --simulate-sizes, or the GC comparison "
        "at --gc-sizes) into --out's existing results",
    )
    parser.add_argument(
        "--gc-sizes", default="10000,100000", help="sizes the GC comparison (gc_vs_distribution) runs at"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.restore_sizes = "600", "600"
        args.latency_ms, args.latency_max_versions = 2.0, 600
        args.deep_blobs, args.deep_blob_mib = 2, 1
        args.simulate_sizes, args.latency_regvault_max_versions = "2000", 0
        args.gc_sizes = "600"
    args.size_list = [int(s) for s in str(args.sizes).split(",") if s]
    args.restore_list = [int(s) for s in str(args.restore_sizes).split(",") if s]
    args.simulate_list = [int(s) for s in str(args.simulate_sizes).split(",") if s]
    args.gc_list = [int(s) for s in str(args.gc_sizes).split(",") if s]
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = Bench(args)
    started = time.perf_counter()
    if args.refresh:
        try:
            bench.refresh(started, args.refresh)
        finally:
            shutil.rmtree(bench.workdir, ignore_errors=True)
        return 0
    try:
        for size in args.size_list:
            bench.audit_vs_gc(size)
        for size in args.restore_list:
            bench.restore_vs_pit(size)
        for size in args.gc_list:
            bench.gc_vs_distribution(size)
        bench.deep_vs_hashlib()
        for size in args.simulate_list:
            bench.simulate(size)
        bench.write(started)
    finally:
        shutil.rmtree(bench.workdir, ignore_errors=True)
    print(f"wrote {bench.out / 'results.json'}, {bench.out / 'RESULTS.md'}, {bench.out / 'bench.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
