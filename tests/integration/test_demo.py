import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.instance import engine_unavailable

from .support import chromium_screenshot

# with a Docker Engine the setup's launch command runs on the emulated instance, and the seed's client
ON_INSTANCE = (
    "regvault: healthy: 401 without credentials, 200 with them",
    "docker ps on the instance: registry public.ecr.aws/docker/library/registry:2 Up",
    "12. the seed's own client",
    "Login Succeeded",
    '{"name":"seed/hello","tags":["1"]}',
    "pulled by tag and by digest",
)

PHRASES = (
    "0. setup: the template's Setup state machine",
    "0 problem(s), nothing written before this passed",
    "online after one reboot (AllowReboot=true)",
    "attached AmazonSSMManagedInstanceCore",
    "names, never secret values",
    "1. push sample images",
    "regvault audit on the healthy registry",
    "audit clean",
    "garbage-collect --delete-untagged",
    "REVISION_LINK_MISSING",
    "TAG_DELETED",
    "plan only:",
    "restored:",
    "repair: regvault restore team/multi:1 --to sha256:",  # the grouped audit names each fix
    "would repair team/app:1.1",
    "repaired team/multi:1 in place",
    "skopeo pulled and verified team/multi:1",
    "9. regvault gc",
    "plan only: would sweep",
    "applied: run gc-",
    "after the GC (the index's children were kept)",
    "undone:",
    "10. regvault usage",
    "monthly: $",
    "11. protected tags (release/*:v*) and the push journal",
    "put back: release/app:v1 serves",
    "stopping",
)


def test_make_demo_runs_the_whole_lifecycle_and_cleans_up(tmp_path):
    work, output = tmp_path / "work", tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "harness.demo", "--workdir", str(work), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # who tried it, from the registry's notifications: the setup's admin on the launched registry
    who = "by admin; put back to" if engine_unavailable() is None else "by regvault; put back to"
    for phrase in (*PHRASES, who, *(ON_INSTANCE if engine_unavailable() is None else ())):
        assert phrase in result.stdout, phrase
    broken = json.loads((output / "audit-broken.json").read_text())
    assert {"BLOB_MISSING", "REVISION_LINK_MISSING", "TAG_DELETED"} <= {f["code"] for f in broken["findings"]}
    images = {f"{i['repository']}:{i['tag']}": i for i in broken["images"]}
    assert images["team/api:2.0"]["state"] == "deleted" and all(i["recoverable"] for i in images.values())
    repair = json.loads((output / "repair.json").read_text())
    assert repair["applied"] and {f"{i['repository']}:{i['tag']}" for i in repair["images"]} == {
        "team/app:1.1",
        "team/multi:1",
        "team/multi-list:1",
    }
    final = json.loads((output / "audit.json").read_text())
    assert final["summary"]["errors"] == 0 and final["summary"]["deleted_tags"] == 0
    assert (output / "audit.md").read_text().startswith("# regvault audit: clean")
    gc = json.loads((output / "gc.json").read_text())
    assert gc["applied"] and gc["summary"]["manifests"] + gc["summary"]["blobs"] > 0
    assert not list(work.glob("*.pid"))  # every process it started was stopped
    screenshot(output / "audit-broken.html", tmp_path)


def screenshot(page, tmp_path):
    """The demo's report of the broken registry, rendered in headless Chromium. `make docs` sets
    REGVAULT_UPDATE_DOCS=1 to make it the README's screenshot (so a plain test run leaves the tree alone)."""
    shot = tmp_path / "report.png"
    if chromium_screenshot(page, shot, tmp_path) and os.environ.get("REGVAULT_UPDATE_DOCS") == "1":
        shutil.copy(shot, Path(__file__).resolve().parents[2] / "docs" / "audit-report.png")
