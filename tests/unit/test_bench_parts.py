"""The pieces of `make bench` that can be checked without processes: the generator's workload, the
request classifier, the restore target, and the goal verdicts in RESULTS.md."""

import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from harness.bench import Results, restore_target
from harness.bench_report import goals
from harness.generator import synthetic
from harness.latency import LatencyProxy, classify
from regvault.storage.inventory import walk
from regvault.storage.layout import RegistryLayout
from regvault.storage.model import RegistryModel

from .builders import replay

END = datetime(2026, 11, 1, tzinfo=UTC)


def test_synthetic_workload_reaches_its_size_with_every_pattern():
    sim, workload = synthetic(5000, seed=3, end=END)
    assert 5000 <= workload.versions < 5000 + 200  # stops within one push of the target
    assert workload.versions == len(sim.ops)
    assert workload.indexes > 0 and workload.collections > 0 and workload.pushes > 50
    kinds = Counter("upload" if "/_uploads/" in op.key else op.key.rsplit("/", 2)[-2] for op in sim.ops)
    assert kinds["upload"] > len(sim.ops) // 2  # upload scratch dominates, as on a real registry
    assert any(op.body is None and op.key.endswith("/data") and "/blobs/" in op.key for op in sim.ops)
    assert all(a.at < b.at for a, b in zip(sim.ops, sim.ops[1:], strict=False))
    # the same seed gives the same registry (upload UUIDs included)
    again, _ = synthetic(5000, seed=3, end=END)
    assert [(o.key, o.body) for o in again.ops] == [(o.key, o.body) for o in sim.ops]


def test_generated_registry_reads_as_a_registry(s3, bucket):
    # Given a generated history written through the S3 API
    sim, workload = synthetic(1500, seed=5)
    replay(s3, bucket, sim.ops)
    # Then regvault's model sees every repository, no unknown key, and tags where the simulator has them
    from regvault.aws.s3 import S3Store

    store = S3Store(bucket, s3)
    layout = RegistryLayout("")
    model = RegistryModel(walk(store, layout.prefix), layout)
    assert set(model.repositories) == set(workload.repositories)
    assert not model.unknown
    for repo, tags in sim.tags.items():
        live = {name for name, tag in model.repositories[repo].tags.items() if not tag.deleted}
        assert live == set(tags)


def test_classify_names_the_s3_api_of_a_request():
    assert classify("GET", "/b?versions&max-keys=1000&prefix=x") == "ListObjectVersions"
    assert classify("GET", "/b?list-type=2&prefix=docker/") == "ListObjectsV2"
    assert classify("GET", "/b?max-keys=1&prefix=docker/x") == "ListObjects"
    assert classify("GET", "/b/docker/registry/v2/blobs/sha256/ab/x/data") == "GetObject"
    assert classify("HEAD", "/b") == "HeadBucket"
    assert classify("HEAD", "/b/k") == "HeadObject"
    assert classify("GET", "/b?versioning") == "GetBucketSettings"
    assert classify("POST", "/b?delete") == "DeleteObjects"


def test_restore_target_is_a_tag_that_moved_after_the_time():
    sim, workload = synthetic(4000, seed=9)
    repo, tag, when = restore_target(sim.ops, workload.midpoint)
    key = f"repositories/{repo}/_manifests/tags/{tag}/current/link"
    bodies = [(op.at, op.body) for op in sim.ops if op.key.endswith(key) and op.body is not None]
    before = [body for at, body in bodies if at <= workload.midpoint]
    after = [body for at, body in bodies if at > workload.midpoint]
    assert before and any(body != before[-1] for body in after)
    assert when.endswith("Z") and when[:4].isdigit()


def _row(results, bench, metric, ours, peer, **extra):
    results.add(bench, metric, 1000, ours, peer, **extra)


def test_goal_verdicts_follow_the_figures():
    good, bad = Results(), Results()
    _row(good, "audit_vs_gc", "s3_requests", 10, 200)
    _row(bad, "audit_vs_gc", "s3_requests", 10, 90)
    _row(good, "audit_vs_gc", "wall_s", 1.0, 2.0)
    _row(bad, "audit_vs_gc", "wall_s", 2.0, 1.0)
    for r, total in ((good, 16), (bad, 19)):
        _row(r, "audit_requests_vs_lower_bound", "s3_requests", total, 10, lower_bound=10, posture_reads=6)
    verdicts = {name: ok for name, _, ok in goals(good.rows)}
    assert verdicts and all(ok for name, ok in verdicts.items() if ok is not None)
    bad_verdicts = {name: ok for name, _, ok in goals(bad.rows)}
    assert [ok for ok in bad_verdicts.values() if ok is not None] == [False, False, False]
    # the ratio is peer / regvault, > 1 = regvault better
    assert good.rows[0]["ratio"] == 20.0 and bad.rows[1]["ratio"] == 0.5


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        return


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_latency_proxy_delays_forwards_and_counts(echo_server):
    proxy = LatencyProxy(echo_server, delay=0.05)
    try:
        started = time.perf_counter()
        for i in range(3):
            with urllib.request.urlopen(f"{proxy.endpoint_url}/b/key{i}?x=1") as response:
                assert response.read() == f"/b/key{i}?x=1".encode()
        # every request waited at least the delay (a floor, not a speed goal)
        assert time.perf_counter() - started >= 3 * 0.05
        assert proxy.take_counts() == Counter({"GetObject": 3})
        assert proxy.take_counts() == Counter()
    finally:
        proxy.close()
