"""Integration fixtures: the real registry over the S3 emulator, images pushed with real skopeo."""

from collections.abc import Iterator
from typing import Any

import pytest

from harness.local import LocalRegistry, push_samples


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> Iterator[tuple[LocalRegistry, dict[str, Any]]]:
    """A registry holding the sample images (read-only for tests: mutate in your own harness)."""
    with LocalRegistry(tmp_path_factory.mktemp("samples")) as env:
        yield env, push_samples(env)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Iterator[LocalRegistry]:
    """A fresh registry per test module, for tests that change it."""
    with LocalRegistry(tmp_path_factory.mktemp("scratch")) as env:
        yield env


@pytest.fixture
def cli_env(monkeypatch):
    def apply(env: LocalRegistry) -> None:
        for name, value in env.client_env().items():
            monkeypatch.setenv(name, value)

    return apply
