"""Helpers for integration tests."""

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from harness.local import LocalRegistry


def registry_request(
    env: LocalRegistry, method: str, path: str, headers: dict[str, str] | None = None
) -> int:
    token = base64.b64encode(f"{env.registry.user}:{env.registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{env.registry.address}{path}",
        method=method,
        headers={"Authorization": f"Basic {token}", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def all_versions(env: LocalRegistry) -> list[dict[str, Any]]:
    out = []
    for page in env.s3.get_paginator("list_object_versions").paginate(Bucket=env.bucket):
        out += [dict(v, DeleteMarker=False) for v in page.get("Versions", [])]
        out += [dict(v, DeleteMarker=True) for v in page.get("DeleteMarkers", [])]
    return out


def ls_json(capsys, *argv: str) -> dict[str, Any]:
    from regvault.cli.main import main

    code = main(["ls", "--format", "json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def chromium_screenshot(page: Any, shot: Any, tmp_path: Any, height: int = 1000) -> bool:
    """Render a local HTML file in Debian's headless Chromium; False when Chromium is not installed."""
    import shutil
    import subprocess

    chromium = shutil.which("chromium")
    if chromium is None:
        return False
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            f"--window-size=1280,{height}",
            f"--screenshot={shot}",
            f"file://{page}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", result.stderr[-800:]
    return True


def until(what: str, check: Any, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it answers something true; fail naming ``what`` after ``timeout`` s."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")
