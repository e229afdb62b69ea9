"""RESULTS.md and bench.png from the benchmark rows (see bench.py)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

GOAL_REQUESTS = 10.0
GOAL_BOUND = 1.1
GOAL_RSS_MB = 300.0
GOAL_DEEP = 0.8
GOAL_RESTORE = 10.0
# issue 14: the first audit at 1M versions in the emulator, and through the 20 ms proxy at 100k
GOAL_SPEEDUP_1M = 3.0
GOAL_RSS_1M_MB = 200.0
GOAL_CPU_US = 50.0
GOAL_SPEEDUP_PROXY = 15.0
# issue 15: regvault gc vs garbage-collect --delete-untagged, through the 20 ms proxy
GOAL_GC_SPEEDUP = 10.0


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _rows(rows: list[dict[str, Any]], benchmark: str, metric: str | None = None) -> list[dict[str, Any]]:
    return [r for r in rows if r["benchmark"] == benchmark and (metric is None or r["metric"] == metric)]


def goals(rows: list[dict[str, Any]]) -> list[tuple[str, str, bool | None]]:
    """(goal, what was measured, met?) — None when nothing measured it."""
    out: list[tuple[str, str, bool | None]] = []

    def check(name: str, selected: list[dict[str, Any]], ok: Any, show: Any) -> None:
        if not selected:
            out.append((name, "not measured in this run", None))
            return
        out.append((name, "; ".join(show(r) for r in selected), all(ok(r) for r in selected)))

    with_peer = [r for r in rows if r["peer"] is not None]
    for bench in audit_benches(rows):
        label = f" — {describe(bench)}"
        check(
            f"audit: ≥ {GOAL_REQUESTS:g}x fewer S3 requests than GC --dry-run{label}",
            [r for r in _rows(with_peer, bench, "s3_requests")],
            lambda r: r["ratio"] >= GOAL_REQUESTS,
            lambda r: f"{r['size']:,}: {r['ratio']:,.1f}x",
        )
        check(
            f"audit: faster than GC --dry-run{label}",
            [r for r in _rows(with_peer, bench, "wall_s")],
            lambda r: r["ratio"] > 1,
            lambda r: f"{r['size']:,}: {r['ratio']:,.1f}x",
        )
    bound = _rows(rows, "audit_requests_vs_lower_bound")
    check(
        f"audit: requests ≤ {GOAL_BOUND}x (ceil(versions/1000) + manifests read), posture reads aside",
        bound,
        lambda r: r["regvault"] - r["posture_reads"] <= GOAL_BOUND * r["lower_bound"],
        lambda r: (
            f"{r['size']:,}: {(r['regvault'] - r['posture_reads']) / r['lower_bound']:.3f}x "
            f"({r['regvault'] / r['lower_bound']:.3f}x with the {r['posture_reads']} posture reads)"
        ),
    )
    rss = _rows(rows, "audit_vs_gc", "peak_rss_mb")
    largest = [max(rss, key=lambda r: r["size"])] if rss else []
    check(
        f"audit: peak RSS ≤ {GOAL_RSS_MB:g} MB at the largest size (goal stated for 1M versions)",
        largest,
        lambda r: r["regvault"] <= GOAL_RSS_MB,
        lambda r: f"{r['size']:,}: {r['regvault']:.0f} MB",
    )
    for bench in ("audit_vs_gc", "audit_sharded_vs_gc"):
        label = describe(bench)
        at_1m = [r for r in rows if r["benchmark"] == bench and r["size"] == 1000000]
        check(
            f"audit at 1M versions: ≥ {GOAL_SPEEDUP_1M:g}x faster than GC --dry-run — {label}",
            [r for r in at_1m if r["metric"] == "wall_s" and r["peer"] is not None],
            lambda r: r["ratio"] >= GOAL_SPEEDUP_1M,
            lambda r: f"{r['ratio']:.2f}x ({r['regvault']:.0f} vs {r['peer']:.0f} s)",
        )
        check(
            f"audit at 1M versions: peak RSS ≤ {GOAL_RSS_1M_MB:g} MB — {label}",
            [r for r in at_1m if r["metric"] == "peak_rss_mb"],
            lambda r: r["regvault"] <= GOAL_RSS_1M_MB,
            lambda r: f"{r['regvault']:.0f} MB",
        )
        check(
            f"audit at 1M versions: CPU ≤ {GOAL_CPU_US:g} µs per object version — {label}",
            [r for r in at_1m if r["metric"] == "cpu_us_per_version"],
            lambda r: r["regvault"] <= GOAL_CPU_US,
            lambda r: f"{r['regvault']:.0f} µs",
        )
    for bench in ("audit_vs_gc_20ms", "audit_sharded_vs_gc_20ms"):
        check(
            f"audit through the 20 ms proxy at 100k: ≥ {GOAL_SPEEDUP_PROXY:g}x faster than GC "
            f"— {describe(bench)}",
            [r for r in _rows(rows, bench, "wall_s") if r["size"] == 100000 and r["peer"] is not None],
            lambda r: r["ratio"] >= GOAL_SPEEDUP_PROXY,
            lambda r: f"{r['ratio']:.1f}x ({r['regvault']:.1f} vs {r['peer']:.0f} s)",
        )
    check(
        f"gc: ≥ {GOAL_GC_SPEEDUP:g}x faster than garbage-collect --delete-untagged, 20 ms per request",
        _rows(rows, "gc_vs_distribution_20ms", "wall_s"),
        lambda r: r["ratio"] >= GOAL_GC_SPEEDUP,
        lambda r: f"{r['size']:,}: {r['ratio']:.1f}x ({r['regvault']:.1f} vs {r['peer']:.0f} s)",
    )
    check(
        "gc: 0 broken tags afterwards (every tag and every referrer of a tagged image pulls)",
        _rows(rows, "gc_vs_distribution", "tags_pulling"),
        lambda r: (
            r["regvault"] == r["tags"]
            and _one(rows, "gc_vs_distribution", "referrers_pulling", r["size"])["regvault"] == r["referrers"]
        ),
        lambda r: (
            f"{r['size']:,}: {r['regvault']:.0f}/{r['tags']} tags and "
            f"{_one(rows, 'gc_vs_distribution', 'referrers_pulling', r['size'])['regvault']:.0f}/"
            f"{r['referrers']} referrers pull (garbage-collect: {r['peer']:.0f} tags, "
            f"{_one(rows, 'gc_vs_distribution', 'referrers_pulling', r['size'])['peer']:.0f} referrers)"
        ),
    )
    check(
        f"deep verify: ≥ {GOAL_DEEP}x plain hashlib.sha256 throughput",
        _rows(rows, "deep_vs_hashlib", "throughput_mib_s"),
        lambda r: r["ratio"] >= GOAL_DEEP,
        lambda r: f"{r['ratio']:.2f}x ({r['regvault']:.0f} vs {r['peer']:.0f} MiB/s, {r['workers']} workers)",
    )
    for suffix in sorted(
        {
            r["benchmark"].removeprefix("restore_vs_pit_tag")
            for r in rows
            if r["benchmark"].startswith("restore_vs_pit_tag")
        }
    ):
        label = f" ({suffix.strip('_')} per request)" if suffix else ""
        check(
            f"restore one tag: ≥ {GOAL_RESTORE:g}x fewer S3 requests than s3-pit-restore{label}",
            _rows(rows, f"restore_vs_pit_tag{suffix}", "s3_requests"),
            lambda r: r["ratio"] >= GOAL_RESTORE,
            lambda r: f"{r['size']:,}: {r['ratio']:,.1f}x ({r['regvault']:,.0f} vs {r['peer']:,.0f})",
        )
    return out


def _one(rows: list[dict[str, Any]], benchmark: str, metric: str, size: int) -> dict[str, Any]:
    return next(r for r in _rows(rows, benchmark, metric) if r["size"] == size)


def audit_benches(rows: list[dict[str, Any]]) -> list[str]:
    names = {
        r["benchmark"] for r in rows if r["benchmark"].startswith("audit_") and "_vs_gc" in r["benchmark"]
    }
    return sorted(names, key=lambda b: ("ms" in b, "warm" in b, b))


def describe(bench: str) -> str:
    """audit_vs_gc -> 'first audit', audit_warm_vs_gc_20ms -> 'next audit (manifest cache), 20 ms/request'."""
    what = "next audit (manifest cache)" if "_warm_" in bench else "first audit"
    if "_sharded_" in bench:
        what = "first audit, 256 key ranges in parallel (--shards 256)"
    latency = bench.rsplit("_", 1)[1] if bench.endswith("ms") else ""
    return f"{what}, {latency} per request" if latency else f"{what}, emulator"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    benches = audit_benches(rows)
    for ax, metric, title in (
        (axes[0], "wall_s", "wall time (s)"),
        (axes[1], "s3_requests", "S3 requests"),
    ):
        peers_drawn: set[str] = set()
        for bench in benches:
            selected = sorted(_rows(rows, bench, metric), key=lambda r: r["size"])
            if not selected:
                continue
            latency = bench.endswith("ms")
            style = "--" if latency else "-"
            sizes = [r["size"] for r in selected]
            colour = "#2da44e" if "_warm_" in bench else "#1f6feb"
            ax.plot(
                sizes,
                [r["regvault"] for r in selected],
                style + "o",
                color=colour,
                label=f"regvault, {describe(bench)}",
            )
            peers = [(r["size"], r["peer"]) for r in selected if r["peer"] is not None]
            key = "latency" if latency else "direct"
            if peers and key not in peers_drawn:
                peers_drawn.add(key)
                where = bench.rsplit("_", 1)[1] + " per request" if latency else "emulator"
                ax.plot(
                    [p[0] for p in peers], [p[1] for p in peers], style + "s", color="#d1242f",
                    label=f"garbage-collect --dry-run, {where}",
                )  # fmt: skip
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("registry size (S3 object versions)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("regvault audit vs docker-registry garbage-collect --dry-run (same emulator, same registry)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(
    results: Any,
    args: argparse.Namespace,
    out: Path,
    machine: dict[str, str],
    elapsed: float,
    workloads: dict[int, Any],
    gc_workloads: dict[int, Any] | None = None,
) -> None:
    rows = results.rows
    plot(rows, out / "bench.png")
    lines = [
        "# regvault benchmarks",
        "",
        f"Produced by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} min:",
        "",
        "```",
        f"python -m harness.bench --sizes {args.sizes} --restore-sizes {args.restore_sizes} "
        f"--gc-max-versions {args.gc_max_versions} --latency-ms {args.latency_ms:g} "
        f"--latency-max-versions {args.latency_max_versions} "
        f"--latency-regvault-max-versions {args.latency_regvault_max_versions} "
        f"--simulate-sizes {args.simulate_sizes} --gc-sizes {args.gc_sizes} --deep-blobs {args.deep_blobs} "
        f"--deep-blob-mib {args.deep_blob_mib} --workers {args.workers} --seed {args.seed}",
        "```",
        "",
        "Ratios are what to read: **ratio = peer / regvault** (for throughput regvault / peer), so",
        "**> 1 means",
        "regvault is better**. Absolute seconds depend on this machine and on the emulator (moto",
        "server), which",
        "serves every request of both sides; the 20 ms rows put a loopback proxy adding a fixed delay",
        "per request",
        "in front of the emulator for both sides — the figure that predicts a real bucket.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in machine.items()],
        "",
        "## Goals",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
    ]
    for name, shown, ok in goals(rows):
        lines.append(f"| {name} | {shown} | {'—' if ok is None else ('yes' if ok else '**no**')} |")
    lines += [
        "",
        "![time and S3 requests against registry size](bench.png)",
        "",
        "## Generated registries",
        "",
        "Written straight into the emulator by `harness.generator` (the same S3 writes as",
        "distribution",
        "2.8 + skopeo: uploads and their scratch, mounts of shared base layers, tag overwrites, OCI indexes,",
        "manifest deletes and weekly `garbage-collect --delete-untagged`; proven against the real",
        "registry by",
        "`tests/integration/test_generator_fidelity.py`).",
        "",
        "| size asked | object versions | pushes | indexes | manifest deletes | GC runs | manifests "
        "| repositories |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for size, w in sorted(workloads.items()):
        d = asdict(w)
        lines.append(
            f"| {size:,} | {d['versions']:,} | {d['pushes']:,} | {d['indexes']:,} | {d['deletes']:,} | "
            f"{d['collections']:,} | {d['manifests']:,} | {len(d['repositories']):,} |"
        )
    if gc_workloads:
        lines += [
            "",
            "The GC comparison's registries: the same generator with a signature (an OCI referrer, pushed",
            "by digest) after 15% of pushes and weekly `garbage-collect` *without* `--delete-untagged`, so",
            "untagged manifests (overwritten tags, index children, signatures) wait for the compared run.",
            "",
            "| size asked | object versions | pushes | indexes | referrers | manifests | repositories |",
            "|---|---|---|---|---|---|---|",
        ]
        for size, w in sorted(gc_workloads.items()):
            d = asdict(w)
            lines.append(
                f"| {size:,} | {d['versions']:,} | {d['pushes']:,} | {d['indexes']:,} | {d['referrers']:,} "
                f"| {d['manifests']:,} | {len(d['repositories']):,} |"
            )
    sections = [
        (b, f"Audit vs `docker-registry garbage-collect --dry-run`: {describe(b)}")
        for b in audit_benches(rows)
    ]
    sections += [("audit_requests_vs_lower_bound", "Audit requests vs the lower bound (peer = the bound)")]
    sections += [
        (b, f"Restore vs s3-pit-restore: {b.removeprefix('restore_vs_pit_').replace('_', ', ')}")
        for b in sorted({r["benchmark"] for r in rows if r["benchmark"].startswith("restore_vs_pit")})
    ]
    sections += [
        ("gc_vs_distribution", GC_TITLE + "emulator"),
        ("gc_vs_distribution_20ms", GC_TITLE + "20 ms per request"),
    ]
    sections += [("deep_vs_hashlib", "Deep verify vs plain hashlib.sha256 (size = bytes)")]
    sections += [("audit_simulated", SIMULATED)]
    sections += [("deep_vs_raw_client", DEEP_FROM_EMULATOR)]
    for bench, title in sections:
        lines += section_lines(rows, bench, title)
    lines += [
        "",
        "## How each figure is taken",
        "",
        "- Each measured tool is its own process: wall time around it, peak RSS and CPU time (user +",
        "  system) from",
        "  `wait4` for that process only. `cpu_us_per_version` is that CPU time per object version:",
        "  it speaks of the",
        "  tool's own code, the emulator's cost (moto runs in another process) left out.",
        "- regvault's S3 requests: its botocore `before-send` hook (`RequestCounter`), by API.",
        "  garbage-collect's and s3-pit-restore's: counted at the emulator (its request log) or at",
        "  the proxy, by",
        "  method and query (`harness.latency.classify`).",
        "- The lower bound of an audit: one ListObjectVersions per 1,000 versions + one GET per",
        "  manifest read.",
        "  The audit adds fixed bucket-posture reads (versioning, lifecycle, encryption, public",
        "  access block,",
        "  policy, HeadBucket); both ratios are shown.",
        "- Restore: each of the three runs (one tag, whole repository, s3-pit-restore on the",
        "  repository's prefix,",
        "  in place) starts from a fresh copy of the same registry, restoring to the same time.",
        "- Deep verify: blobs of random bytes in the emulator, hashed by `S3Store.stream_sha256` (1",
        "  MiB chunks) on",
        "  a thread pool as `regvault audit --deep` does; the peer is `hashlib.sha256` over the same",
        "  bytes in",
        "  memory, one blob after another, in the benchmark's own process.",
    ]
    lines += ["", READING.strip()]
    if results.notes:
        lines += ["", "## Notes", "", *[f"- {n}" for n in results.notes]]
    (out / "RESULTS.md").write_text("\n".join(lines) + "\n")


READING = """
## Reading the figures

- **First audit vs next audit.** The first audit reads every manifest version it may need: live ones,
  and every earlier one (a tag's history, what S3 can still restore). `garbage-collect` reads live
  manifests only, and a registry that runs `--delete-untagged` weekly has few of those: so the first
  audit's request ratio shrinks as history grows. Manifest versions never change, so the next audit
  (the scheduled one, or the CLI with `--cache-dir`) reads only the manifest versions it has not seen:
  one list request per 1,000 versions + new manifests + 6 bucket reads, with the same findings.
- **Emulator vs S3.** In the emulator every request costs about a millisecond and a 1,000-version
  listing page costs the emulator far more than a small GET, and the audit lists every version while
  GC lists live keys only: at the largest sizes the emulator's own listing cost sets the audit's wall
  time. Through the 20 ms proxy — close to what a small S3 request costs — the audit's parallel reads
  and 1,000-version pages win by the ratios shown; GC sends its requests one at a time.
- **CPU per object version** is each tool's own process (the emulator excluded): regvault is Python
  with botocore (request signing, response parsing), garbage-collect is Go.
- **Memory** grows with the versions regvault keeps (every version of links, blobs and manifests, with
  its id, time, size and ETag, to answer what can be restored) and with the parsed manifests. Upload
  scratch, three quarters of the versions, is folded away, and since issue 14 mostly not listed at all:
  a folder whose versions run past a listing page is read current-only. ETags, timestamps and digests
  are held once each. A distributed audit's worker holds one key range; its reduce step holds every
  non-scratch version (see the simulated rows: "peak_mb_merge_and_rules").
- **Simulated rows** measure regvault's own CPU, memory and requests on a generated registry held in
  memory (no HTTP, no XML): "projected_wall_s_*" adds one 20 ms delay per request, spread over the
  workers (one Lambda: 8 threads; distributed: the slowest key range, then the reduce's reads).
"""


GC_TITLE = (
    "`regvault gc --delete-untagged --apply` vs `docker-registry garbage-collect --delete-untagged` "
    "(each on a fresh copy of the same registry: indexes, OCI referrers, no earlier untagged sweep; "
    "freed = current objects and bytes before minus after; pulling = through the real registry "
    "afterwards, every digest checked): "
)

SIMULATED = (
    "Simulated audit (no emulator: harness.simstore serves a generated registry from memory) — "
    "the distributed audit's pieces, one key range at a time, then the merge and the rules"
)

DEEP_FROM_EMULATOR = "Deep verify from the emulator vs the plain client (get_object().read() + hashlib)"


def section_lines(rows: list[dict[str, Any]], bench: str, title: str) -> list[str]:
    selected = _rows(rows, bench)
    if not selected:
        return []
    lines = ["", f"## {title}", "", "| size | metric | regvault | peer | ratio |", "|---|---|---|---|---|"]
    for r in sorted(selected, key=lambda r: (r["size"], r["metric"])):
        lines.append(
            f"| {r['size']:,} | {r['metric']} | {_fmt(r['regvault'])} | {_fmt(r['peer'])} "
            f"| {_fmt(r['ratio'])} |"
        )
    for r in selected:
        if r.get("regvault_by_api"):
            lines.append("")
            lines.append(
                f"- {r['size']:,}: regvault by API {_api(r['regvault_by_api'])}; peer by API "
                f"{_api(r.get('peer_by_api') or {})}"
            )
    return lines


def _api(counts: dict[str, int]) -> str:
    if not counts:
        return "—"
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
