import json
import subprocess
import sys


def test_make_demo_runs_end_to_end_and_cleans_up(tmp_path):
    work, output = tmp_path / "work", tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "regvault.harness.demo", "--workdir", str(work), "--output", str(output)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for phrase in (
        "1. push sample images",
        "regvault audit on the healthy registry",
        "audit clean",
        "garbage-collect --delete-untagged",
        "REVISION_LINK_MISSING",
        "TAG_DELETED",
        "stopping",
    ):
        assert phrase in out
    report = json.loads((output / "audit.json").read_text())
    assert report["summary"]["errors"] > 0
    assert (output / "audit.md").read_text().startswith("# regvault audit:")
    assert not list(work.glob("*.pid"))  # every process it started was stopped
