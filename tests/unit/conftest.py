from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

STOCK_LIST_OBJECT_VERSIONS = None


@pytest.fixture(autouse=True)
def s3_key_marker_semantics(monkeypatch: pytest.MonkeyPatch) -> None:
    """ListObjectVersions as S3 answers it (the emulator's patched listing, with its cache of key names
    dropped whenever a name comes or goes): stock moto 5 skips the first key after a KeyMarker that is
    not a key itself, which a walk that jumps past an upload folder sends. A test that wants moto's own
    listing asks for ``stock_moto_listing``."""
    global STOCK_LIST_OBJECT_VERSIONS
    from moto.s3 import models as s3_models
    from moto.s3.utils import _VersionedKeyStore

    from harness import moto_patches

    if STOCK_LIST_OBJECT_VERSIONS is None:
        STOCK_LIST_OBJECT_VERSIONS = s3_models.S3Backend.list_object_versions
    monkeypatch.setattr(s3_models.S3Backend, "list_object_versions", moto_patches.list_object_versions)
    for name, method in moto_patches.tracked_methods(_VersionedKeyStore).items():
        monkeypatch.setattr(_VersionedKeyStore, name, method)
    from moto.s3.responses import S3Response

    original = getattr(S3Response.get_bucket_notification, "__wrapped__", S3Response.get_bucket_notification)
    monkeypatch.setattr(
        S3Response, "get_bucket_notification", moto_patches.notification_with_event_bridge(original)
    )


@pytest.fixture
def stock_moto_listing(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.s3 import models as s3_models

    monkeypatch.setattr(s3_models.S3Backend, "list_object_versions", STOCK_LIST_OBJECT_VERSIONS)


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        import boto3

        yield boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def bucket(s3: Any) -> str:
    s3.create_bucket(Bucket="reg")
    s3.put_bucket_versioning(Bucket="reg", VersioningConfiguration={"Status": "Enabled"})
    return "reg"


@pytest.fixture(scope="session")
def template() -> Any:
    from harness.setup_local import load_template

    return load_template()


@pytest.fixture(scope="session")
def translated() -> Any:
    """template.yaml translated by samtranslator (.venv-sam), as CloudFormation receives it."""
    import json
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    sam_python = root / ".venv-sam" / "bin" / "python"
    if not sam_python.exists():
        pytest.skip("make install creates .venv-sam (samtranslator)")
    out = subprocess.run(
        [str(sam_python), str(root / "tests" / "translate_template.py"), str(root / "template.yaml")],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
    )
    return json.loads(out.stdout)["Resources"]
