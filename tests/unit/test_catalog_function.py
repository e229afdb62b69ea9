import json

import pytest

from regvault.errors import InvalidInput

from .builders import LambdaContext, RegistryWriter, load_handler, push_image, sample_event


@pytest.fixture
def handler_module(s3, bucket, monkeypatch):
    return load_handler("catalog", monkeypatch, {"REGVAULT_BUCKET": bucket, "REGVAULT_ROOT": "/r"})


def test_handler_lists_the_repository_of_the_sample_event(handler_module, s3, bucket, capsys):
    w = RegistryWriter(s3, bucket, root="r")
    digest = push_image(w, "team/app", "1.0", "a")
    push_image(w, "other", "1", "b")
    result = handler_module.handler(sample_event("catalog-repository.json"), LambdaContext("CatalogFunction"))
    assert result["root"] == "r"
    assert [r["name"] for r in result["repositories"]] == ["team/app"]
    assert result["repositories"][0]["tags"][0]["digest"] == str(digest)
    assert result["summary"]["s3_requests"] == 2  # one list + one manifest GET
    everything = handler_module.handler(sample_event("catalog-all.json"), LambdaContext("CatalogFunction"))
    assert everything["summary"]["repositories"] == 2
    # one EMF metric line per invocation
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["TagsListed"] for m in emf] == [[1.0], [2.0]]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (sample_event("catalog-invalid.json"), "invalid repository name"),
        ({"repository": "a", "extra": 1}, "extra: Extra inputs are not permitted"),
        ({"repository": 5}, "repository: Input should be a valid string"),
        (["not", "an", "object"], "event must be a JSON object"),
    ],
)
def test_bad_events_are_one_line_errors(handler_module, payload, message):
    with pytest.raises(InvalidInput) as info:
        handler_module.handler(payload, LambdaContext("CatalogFunction"))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_environment_fails_at_cold_start(monkeypatch):
    from regvault.lambda_edge.events import Settings

    with pytest.raises(InvalidInput, match="bucket"):
        Settings.from_env({"REGVAULT_BUCKET": ""})
    assert Settings.from_env({"REGVAULT_BUCKET": "abc", "REGVAULT_ROOT": "/x/"}).root == "x"
