import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from regvault.errors import InvalidInput

from .builders import RegistryWriter, push_image

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    function_name: str = "CatalogFunction"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:CatalogFunction"
    aws_request_id: str = "req-1"


@pytest.fixture
def handler_module(s3, bucket, monkeypatch):
    monkeypatch.setenv("REGVAULT_BUCKET", bucket)
    monkeypatch.setenv("REGVAULT_ROOT", "/r")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "regvault")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "regvault")
    spec = importlib.util.spec_from_file_location("catalog_app", ROOT / "functions/catalog/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the handler module is imported after the mock started
    return module


def event(name):
    return json.loads((ROOT / "events" / name).read_text())


def test_handler_lists_the_repository_of_the_sample_event(handler_module, s3, bucket, capsys):
    w = RegistryWriter(s3, bucket, root="r")
    digest = push_image(w, "team/app", "1.0", "a")
    push_image(w, "other", "1", "b")
    result = handler_module.handler(event("catalog-repository.json"), Context())
    assert result["root"] == "r"
    assert [r["name"] for r in result["repositories"]] == ["team/app"]
    assert result["repositories"][0]["tags"][0]["digest"] == str(digest)
    assert result["summary"]["s3_requests"] == 2  # one list + one manifest GET
    everything = handler_module.handler(event("catalog-all.json"), Context())
    assert everything["summary"]["repositories"] == 2
    # one EMF metric line per invocation
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["TagsListed"] for m in emf] == [[1.0], [2.0]]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (event("catalog-invalid.json"), "invalid repository name"),
        ({"repository": "a", "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"repository": 5}, "repository: Input should be a valid string"),
        (["not", "an", "object"], "event must be a JSON object"),
    ],
)
def test_bad_events_are_one_line_errors(handler_module, payload, message):
    with pytest.raises(InvalidInput) as info:
        handler_module.handler(payload, Context())
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_environment_fails_at_cold_start(monkeypatch):
    from regvault.lambda_models import Settings

    with pytest.raises(InvalidInput, match="bucket"):
        Settings.from_env({"REGVAULT_BUCKET": ""})
    assert Settings.from_env({"REGVAULT_BUCKET": "abc", "REGVAULT_ROOT": "/x/"}).root == "x"
