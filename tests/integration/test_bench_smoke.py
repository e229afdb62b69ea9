"""`make bench` at a smoke size: every benchmark runs end to end and writes consistent figures."""

import json
import math

from harness import bench

METRICS = {"wall_s", "s3_requests", "peak_rss_mb", "throughput_mib_s", "cpu_us_per_version"}
SIMULATED = {
    "peak_mb_largest_range",
    "part_mb_largest",
    "part_mb_total",
    "peak_mb_merge_and_rules",
    "projected_wall_s_one_lambda_2ms",
    "projected_wall_s_distributed_2ms",
}
GC = {"objects_freed", "bytes_freed", "tags_pulling", "referrers_pulling"}
HIGHER_IS_BETTER = {"throughput_mib_s", *GC}


def test_bench_smoke_writes_consistent_results(tmp_path):
    # When the whole benchmark runs at its smoke size
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())
    # Then one row per figure, in the documented shape
    names = {r["benchmark"] for r in rows}
    assert {
        "audit_vs_gc",
        "audit_vs_gc_2ms",
        "audit_warm_vs_gc",
        "audit_warm_vs_gc_2ms",
        "audit_requests_vs_lower_bound",
        "restore_vs_pit_tag",
        "restore_vs_pit_repository",
        "restore_vs_pit_tag_2ms",
        "deep_vs_hashlib",
        "deep_vs_raw_client",
        "audit_sharded_vs_gc",
        "audit_sharded_vs_gc_2ms",
        "audit_simulated",
        "gc_vs_distribution",
        "gc_vs_distribution_2ms",
    } <= names
    for r in rows:
        assert {"benchmark", "metric", "size", "regvault", "peer", "ratio"} <= set(r)
        allowed = {"audit_simulated": METRICS | SIMULATED, "gc_vs_distribution": METRICS | GC}
        assert r["metric"] in allowed.get(r["benchmark"].removesuffix("_2ms"), METRICS), r
        assert r["regvault"] > 0 and r["size"] > 0
        if r["peer"]:
            expected = (
                r["regvault"] / r["peer"] if r["metric"] in HIGHER_IS_BETTER else r["peer"] / r["regvault"]
            )
            assert math.isclose(r["ratio"], expected, rel_tol=0.01, abs_tol=0.0006)  # ratios have 3 decimals
    by = {(r["benchmark"], r["metric"]): r for r in rows}
    audit = by[("audit_vs_gc", "s3_requests")]
    versions = by[("audit_vs_gc", "wall_s")]["versions"]
    manifests = by[("audit_vs_gc", "wall_s")]["manifests"]
    # regvault's requests by API: at most one listing page per 1,000 versions (fewer when upload scratch
    # is skipped), one GET per manifest
    assert 1 <= audit["regvault_by_api"]["ListObjectVersions"] <= math.ceil(versions / 1000)
    assert audit["regvault_by_api"]["GetObject"] == manifests
    assert audit["regvault"] == sum(audit["regvault_by_api"].values())
    # the peers really ran: GC listed and read, s3-pit-restore listed versions and copied
    assert (
        audit["peer"] == sum(audit["peer_by_api"].values()) and audit["peer_by_api"]["GetObject"] >= manifests
    )
    pit = by[("restore_vs_pit_tag", "s3_requests")]
    assert pit["peer_by_api"].get("ListObjectVersions", 0) >= 1
    assert pit["regvault_by_api"]["CopyObject"] >= 1  # the restore moved the tag back
    # the next audit, with the manifest cache the first one wrote, reads no manifest again
    warm = by[("audit_warm_vs_gc", "s3_requests")]
    assert "GetObject" not in warm["regvault_by_api"]
    assert warm["regvault"] == audit["regvault"] - manifests
    # the proxy saw the same requests the emulator saw (its counts are the peer's through it)
    assert by[("audit_vs_gc_2ms", "s3_requests")]["peer"] >= audit["peer"] * 0.9
    assert 10 < by[("audit_vs_gc", "peak_rss_mb")]["regvault"] < 1000
    # the sharded audit listed in 256 + 37 ranges and read the same manifests
    sharded = by[("audit_sharded_vs_gc", "s3_requests")]["regvault_by_api"]
    assert sharded["ListObjectVersions"] >= 256 and sharded["GetObject"] == manifests
    # the simulation listed every range, read the manifests, and measured a range and the merge
    simulated = {m: r for (b, m), r in by.items() if b == "audit_simulated"}
    assert simulated.keys() >= SIMULATED | {"s3_requests", "cpu_us_per_version"}
    assert simulated["s3_requests"]["listing"] >= 256 + 37 and simulated["part_mb_total"]["regvault"] > 0
    # the GC comparison: both collectors freed something on the same registry; regvault's left every tag
    # and every referrer of a tagged image pulling through the real registry; distribution's, which
    # knows nothing of referrers, swept the signatures
    gc = {m: r for (b, m), r in by.items() if b == "gc_vs_distribution"}
    assert gc.keys() >= GC | {"wall_s", "s3_requests"}
    assert gc["objects_freed"]["regvault"] > 0 and gc["objects_freed"]["peer"] > 0
    assert gc["tags_pulling"]["regvault"] == gc["tags_pulling"]["tags"] > 0
    assert gc["referrers_pulling"]["regvault"] == gc["referrers_pulling"]["referrers"] > 0
    assert gc["referrers_pulling"]["peer"] < gc["referrers_pulling"]["referrers"]
    assert gc["s3_requests"]["regvault_by_api"]["DeleteObject"] >= gc["objects_freed"]["regvault"]
    assert by[("gc_vs_distribution_2ms", "objects_freed")]["regvault"] == gc["objects_freed"]["regvault"]
    # RESULTS.md names the machine, the command, the goals; the plot is a PNG
    text = (tmp_path / "RESULTS.md").read_text()
    for heading in (
        "## Machine",
        "## Goals",
        "## Generated registries",
        "## Deep verify from the emulator",
        "## Reading the figures",
        "python -m harness.bench",
    ):
        assert heading in text
    png = (tmp_path / "bench.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
