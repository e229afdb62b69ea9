"""regvault status, and the HTML report (rendered by a real browser when Chromium is installed)."""

import json
import socket

import pytest

from regvault.cli.main import main

from .support import chromium_screenshot


def test_status_reports_posture_registry_and_last_audit(samples, capsys, cli_env, tmp_path):
    env, _ = samples
    cli_env(env)
    env.s3.create_bucket(Bucket="status-reports")
    # no report yet
    code = main(
        [
            "status",
            "--format",
            "json",
            "--registry-url",
            f"http://{env.registry.address}",
            "--reports-bucket",
            "status-reports",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"]
    assert doc["posture"]["versioning"] == "Enabled" and doc["posture"]["recovery_window_days"] is None
    assert doc["registry"] == {
        "url": f"http://{env.registry.address}/v2/",
        "reachable": True,
        "http_status": 401,
        "auth": "required",
    }
    assert doc["last_audit"]["missing"] is True
    # after a scheduled audit wrote its reports, status shows its summary
    from regvault.audit.run import AuditRequest, run_audit
    from regvault.aws.clients import s3_client
    from regvault.aws.s3 import S3Store
    from regvault.reports.scheduled import publish_report
    from regvault.storage.layout import RegistryLayout

    client = s3_client(endpoint_url=env.emulator.endpoint_url)
    report = run_audit(S3Store(env.bucket, client), RegistryLayout(env.root), AuditRequest())
    publish_report(report, S3Store("status-reports", s3_client(endpoint_url=env.emulator.endpoint_url)), None)
    assert main(["status", "--reports-bucket", "status-reports"]) == 0
    table = capsys.readouterr().out
    assert "versioning Enabled" in table and "0 error(s)" in table and "latest.json" in table
    # a registry that does not answer makes status exit 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["status", "--registry-url", f"http://127.0.0.1:{port}"]) == 1
    assert "unreachable" in capsys.readouterr().out


def test_html_report_is_self_contained_and_renders_in_a_browser(samples, capsys, cli_env, tmp_path):
    env, _ = samples
    cli_env(env)
    page = tmp_path / "report.html"
    assert main(["audit", "--format", "html", "--output", str(page)]) == 0
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html and "regvault audit: clean" in html
    assert "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # nothing fetched from elsewhere
    for tag in ("team/app:1.0", "team/multi:1", "library/base:1"):
        assert tag in html
    shot = tmp_path / "report.png"
    if not chromium_screenshot(page, shot, tmp_path):
        pytest.skip("Debian chromium is not installed (make test installs it)")
    assert shot.stat().st_size > 10_000
