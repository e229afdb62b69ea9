"""The registry side of the setup: the rendered config over TLS with htpasswd, with a real client."""

import base64
import json
import ssl
import subprocess
import urllib.request
from pathlib import Path

import pytest

from harness.local import LocalRegistry


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory):
    with LocalRegistry(tmp_path_factory.mktemp("tls"), tls=True) as env:
        yield env


def _get(env, path):
    context = ssl.create_default_context(cafile=str(env.registry.cert_dir / "ca.crt"))
    token = base64.b64encode(f"{env.registry.user}:{env.registry.password}".encode()).decode()
    request = urllib.request.Request(
        f"https://{env.registry.address}{path}",
        headers={
            "Authorization": f"Basic {token}",
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        },
    )
    with urllib.request.urlopen(request, context=context, timeout=30) as response:
        return response.status, response.read()


def test_rendered_config_serves_tls_with_htpasswd_to_skopeo(tls_registry, tmp_path):
    env = tls_registry
    reg = env.registry
    assert "tls:" in reg.config_path.read_text() and "htpasswd:" in reg.config_path.read_text()
    auth = tmp_path / "auth.json"
    certs = str(reg.cert_dir)

    # skopeo logs in over TLS, trusting only the generated certificate
    def login(authfile: Path, password: str) -> subprocess.CompletedProcess[str]:
        argv = ["skopeo", "login", "--authfile", str(authfile), "--cert-dir", certs]
        argv += ["--username", reg.user, "--password-stdin", reg.address]
        return subprocess.run(argv, input=password, capture_output=True, text=True, timeout=60, check=False)

    login_ok = login(auth, reg.password)
    assert login_ok.returncode == 0, login_ok.stderr
    wrong = login(tmp_path / "x.json", "not-the-password")
    assert wrong.returncode != 0 and "invalid username/password" in wrong.stderr
    # push with the login, no plain-HTTP fallback allowed
    lay = env.layout
    image = lay.tag("tls", lay.image([lay.layer("tls-layer")]))
    push = subprocess.run(
        [
            "skopeo",
            "--policy",
            str(env.skopeo.policy),
            "copy",
            "--authfile",
            str(auth),
            "--dest-cert-dir",
            certs,
            f"oci:{lay.path}:tls",
            f"docker://{reg.address}/secure/app:1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert push.returncode == 0, push.stderr
    # the catalog, the tags and the manifest over TLS with basic auth
    status, body = _get(env, "/v2/_catalog")
    assert status == 200 and json.loads(body)["repositories"] == ["secure/app"]
    status, body = _get(env, "/v2/secure/app/tags/list")
    assert json.loads(body)["tags"] == ["1"]
    status, body = _get(env, "/v2/secure/app/manifests/1")
    assert (
        status == 200 and json.loads(body)["layers"][0]["digest"] == image.manifests[0]["layers"][0]["digest"]
    )
    # without credentials: 401
    context = ssl.create_default_context(cafile=str(reg.cert_dir / "ca.crt"))
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"https://{reg.address}/v2/", context=context, timeout=30)
    assert info.value.code == 401
