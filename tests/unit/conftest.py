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
    from .builders import load_template

    return load_template()
