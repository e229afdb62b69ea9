from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws


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
