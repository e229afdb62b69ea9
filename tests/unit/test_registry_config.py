import pytest
import yaml

from regvault.errors import InvalidInput
from regvault.setup.registry_config import RegistrySettings, render


def test_aws_config_uses_instance_role_and_region_endpoint():
    text = render(
        RegistrySettings(
            bucket="b",
            region="eu-west-1",
            root="/reg",
            listen="0.0.0.0:443",
            htpasswd_path="/etc/registry/htpasswd",
            tls_certificate="/etc/registry/tls.crt",
            tls_key="/etc/registry/tls.key",
            notifications_url="https://hooks.example/registry",
        )
    )
    cfg = yaml.safe_load(text)
    s3 = cfg["storage"]["s3"]
    assert "regionendpoint" not in s3 and "accesskey" not in s3 and "secretkey" not in s3
    assert s3 == {
        "region": "eu-west-1",
        "bucket": "b",
        "encrypt": True,
        "secure": True,
        "v4auth": True,
        "chunksize": 10 * 1024 * 1024,
        "rootdirectory": "/reg",
    }
    assert cfg["version"] == "0.1"
    assert cfg["http"]["tls"] == {"certificate": "/etc/registry/tls.crt", "key": "/etc/registry/tls.key"}
    assert cfg["auth"]["htpasswd"]["path"] == "/etc/registry/htpasswd"
    assert cfg["notifications"]["endpoints"][0]["url"] == "https://hooks.example/registry"
    assert cfg["storage"]["delete"] == {"enabled": True}
    assert "cache" not in cfg["storage"]  # no in-memory blob-descriptor cache by default


def test_emulator_config_has_endpoint_and_keys():
    cfg = yaml.safe_load(
        render(
            RegistrySettings(
                bucket="b",
                region="us-east-1",
                s3_endpoint="http://127.0.0.1:9000",
                access_key="k",
                secret_key="s",
                chunk_size=5 * 1024 * 1024,
                blob_descriptor_cache="inmemory",
            )
        )
    )
    s3 = cfg["storage"]["s3"]
    assert s3["regionendpoint"] == "http://127.0.0.1:9000" and s3["secure"] is False
    assert s3["accesskey"] == "k" and "rootdirectory" not in s3
    assert cfg["storage"]["cache"] == {"blobdescriptor": "inmemory"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bucket": ""},
        {"chunk_size": 1024},
        {"tls_certificate": "/c"},
        {"access_key": "k"},
        {"blob_descriptor_cache": "disk"},
    ],
)
def test_invalid_settings_are_refused(kwargs):
    with pytest.raises(InvalidInput):
        RegistrySettings(**{"bucket": "b", "region": "r", **kwargs})


def test_strings_are_quoted_safely():
    cfg = yaml.safe_load(render(RegistrySettings(bucket="b", region="r", root='we: "ird"#x')))
    assert cfg["storage"]["s3"]["rootdirectory"] == '/we: "ird"#x'
