"""Builders for unit tests: registry-shaped keys written through the layout module."""

from typing import Any

from regvault.storage.digest import Digest
from regvault.storage.layout import RegistryLayout


def digest_of(label: str) -> Digest:
    return Digest.of(label.encode())


class RegistryWriter:
    """Writes keys the way distribution does (same shapes, same link bodies), for unit tests."""

    def __init__(self, s3: Any, bucket: str, root: str = "") -> None:
        self.s3, self.bucket, self.layout = s3, bucket, RegistryLayout(root)

    def put(self, entity: Any, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.layout.key(entity), Body=body)

    def delete(self, entity: Any) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=self.layout.key(entity))


def replay(s3: Any, bucket: str, ops: Any) -> None:
    """Write a generated history (``harness.generator`` ops) through the S3 API, in order."""
    for op in ops:
        if op.body is None:
            s3.delete_object(Bucket=bucket, Key=op.key)
        else:
            s3.put_object(Bucket=bucket, Key=op.key, Body=op.body)


def random_history(
    s3: Any, bucket: str, names: list[str], writes: int, rng: Any, deletes: float = 0.3
) -> None:
    """``writes`` random puts (random bodies) and deletes (a ``deletes`` share) over ``names``."""
    for _ in range(writes):
        name = rng.choice(names)
        if rng.random() < deletes:
            s3.delete_object(Bucket=bucket, Key=name)
        else:
            s3.put_object(Bucket=bucket, Key=name, Body=rng.randbytes(rng.randint(0, 20)))


def oci_manifest(config: Digest, layers: list[Digest], sizes: dict[Digest, int] | None = None) -> bytes:
    import json

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": str(config),
                "size": (sizes or {}).get(config, 2),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": str(x),
                    "size": (sizes or {}).get(x, 3),
                }
                for x in layers
            ],
        }
    ).encode()


def push_image(w: RegistryWriter, repository: str, tag: str, label: str) -> Digest:
    """Write what distribution writes for a push of a one-layer image; return the manifest digest."""
    from regvault.storage.layout import BlobData, LayerLink

    config, layer = f"cfg-{label}".encode(), f"layer-{label}".encode()
    for blob in (config, layer):
        w.put(BlobData(Digest.of(blob)), blob)
        w.put(LayerLink(repository, Digest.of(blob)), Digest.of(blob).link_body())
    sizes = {Digest.of(config): len(config), Digest.of(layer): len(layer)}
    return put_manifest(w, repository, tag, oci_manifest(Digest.of(config), [Digest.of(layer)], sizes))


def put_manifest(w: RegistryWriter, repository: str, tag: str, body: bytes) -> Digest:
    """Write manifest bytes as the tag's current target (blob, revision link, tag index and current)."""
    from regvault.storage.layout import BlobData, RevisionLink, TagCurrentLink, TagIndexLink

    digest = Digest.of(body)
    w.put(BlobData(digest), body)
    w.put(RevisionLink(repository, digest), digest.link_body())
    w.put(TagIndexLink(repository, tag, digest), digest.link_body())
    w.put(TagCurrentLink(repository, tag), digest.link_body())
    return digest


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
POWERTOOLS_ENV = {
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "regvault",
    "POWERTOOLS_SERVICE_NAME": "regvault",
}


class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.memory_limit_in_mb = 1024
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.aws_request_id = f"req-{function_name}"


def load_handler(function: str, monkeypatch: Any, env: dict[str, str]) -> Any:
    """Import functions/<function>/app.py after the mock started and the environment is set."""
    import importlib.util

    for name, value in {**POWERTOOLS_ENV, **env}.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location(f"{function}_app", ROOT / "functions" / function / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_event(name: str) -> Any:
    import json

    return json.loads((ROOT / "events" / name).read_text())


def alert_inbox() -> tuple[str, Any, str]:
    """An SNS topic with an SQS queue subscribed, to read what a handler published."""
    import boto3

    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, sqs, queue


def dispatch_lambda(monkeypatch: Any, module: Any, handlers: dict[str, str], invoked: list[str]) -> None:
    """Send moto's Lambda invocations (from its Step Functions interpreter) to the real handlers of
    ``module`` (function name -> handler attribute), as Lambda would: an unhandled error becomes the
    function error Step Functions sees. ``invoked`` records each function name."""
    import json

    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke(
        self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        name = function_name.rsplit(":", 1)[-1]
        invoked.append(name)
        handler = getattr(module, handlers[name])
        try:
            return json.dumps(handler(json.loads(body), LambdaContext(name))).encode()
        except Exception as exc:  # what Lambda reports for an unhandled error
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}).encode()

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
