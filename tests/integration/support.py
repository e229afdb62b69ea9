"""Helpers for integration tests."""

import base64
import json
import urllib.error
import urllib.request
from typing import Any

from regvault.harness.local import LocalRegistry


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
    from regvault.cli import main

    code = main(["ls", "--format", "json", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)
