"""One object for the whole local setup: emulator + versioned bucket + registry + skopeo."""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from harness.emulator import S3Emulator
from harness.images import BuiltImage, OciLayout, Skopeo
from harness.processes import Supervisor
from harness.registry import RegistryServer
from regvault.journal.record import SECRET_HEADER

if TYPE_CHECKING:
    from harness.distclient import DistributionClient
    from harness.on_instance import InstanceHost, LaunchedRegistry


def guard_events(
    bucket: str, root: str, protected_tags: str, reports_bucket: str | None = None
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The template's GuardFunction as the emulator runs it: its handler file, its EventBridge rule's
    pattern (the bucket's name put in) and its environment."""
    import json

    from harness import ROOT
    from harness.setup_local import load_template

    guard = load_template()["Resources"]["GuardFunction"]["Properties"]
    pattern = guard["Events"]["TagLinkChanged"]["Properties"]["Pattern"]
    pattern = json.loads(json.dumps(pattern).replace('{"Ref": "BucketName"}', json.dumps(bucket)))
    env = {"REGVAULT_BUCKET": bucket, "REGVAULT_ROOT": root, "REGVAULT_PROTECTED_TAGS": protected_tags}
    if reports_bucket:  # the push journal: the guard says who moved a tag
        env["REPORTS_BUCKET"] = reports_bucket
    env["ALERT_TOPIC_ARN"] = f"arn:aws:sns:us-east-1:123456789012:{bucket}-alerts"  # LocalRegistry makes it
    return str(ROOT / "functions" / "guard" / "app.py"), pattern, env


class LocalRegistry:
    """Start with ``with LocalRegistry() as env:``; everything stops on exit, also on errors."""

    def __init__(
        self,
        workdir: Path | None = None,
        bucket: str | None = None,
        root: str = "",
        blob_descriptor_cache: str | None = None,
        versioned: bool = True,
        tls: bool = False,
        lambda_handlers: str | None = None,
        protected_tags: str | None = None,
        journal: bool = False,
        on_instance: bool = False,
    ) -> None:
        """``protected_tags``: run the template's guard (its EventBridge rule and GuardFunction handler)
        on the bucket's object events, with these ProtectedTags. ``journal``: the registry's
        notifications go to the JournalFunction's handler on a loopback "Function URL"
        (``harness.journal_endpoint``) with a shared secret from the emulator's Secrets Manager; the
        journal lands in ``self.reports_bucket``. ``on_instance``: no registry process; an emulated instance
        with a Docker Engine (``self.instance_host``, ``harness.on_instance``) waits for the launch
        document's command, and ``use_launched`` then makes the container the script started
        ``self.registry``."""
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="regvault-harness-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.bucket = bucket or f"regvault-{secrets.token_hex(4)}"
        self.root = root
        self.supervisor = Supervisor(self.workdir)
        self._closing: list[Any] = []
        try:
            reports = f"{self.bucket}-reports" if journal else None
            events = guard_events(self.bucket, root, protected_tags, reports) if protected_tags else None
            emulator_tls = None
            if on_instance:
                from harness.instance import harness_ca

                emulator_tls = harness_ca()
            self.emulator = S3Emulator(
                self.supervisor, lambda_handlers=lambda_handlers, s3_events=events, tls=emulator_tls
            )
            self.s3 = self.emulator.client("s3")
            self.s3.create_bucket(Bucket=self.bucket)
            self.alerts_queue = self._alerts() if protected_tags else None
            if versioned:
                self.s3.put_bucket_versioning(
                    Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"}
                )
            self.journal = self._journal() if journal else None
            self.registry: RegistryServer | LaunchedRegistry
            self.instance_host: InstanceHost | None = None
            if on_instance:
                from harness.on_instance import InstanceHost

                self.instance_host = InstanceHost(self.supervisor, self.workdir, self.emulator, progress=True)
                self._closing.append(self.instance_host.close)
            else:
                self.registry = RegistryServer(
                    self.supervisor,
                    self.workdir,
                    self.emulator,
                    self.bucket,
                    root=root,
                    blob_descriptor_cache=blob_descriptor_cache,
                    tls=tls,
                    journal=(self.journal.url, {SECRET_HEADER: self.journal_secret})
                    if self.journal
                    else None,
                )
                self.skopeo = Skopeo(
                    self.workdir, self.registry.address, self.registry.user, self.registry.password
                )
            self.layout = OciLayout(self.workdir / "oci")
        except BaseException:
            self.close()
            raise

    def use_launched(self, registry: LaunchedRegistry) -> None:
        """The registry the launch script started on the instance becomes this environment's."""
        self.registry = registry
        self.skopeo = Skopeo(self.workdir, registry.address, registry.user, registry.password)

    def distribution_client(self) -> DistributionClient:
        """The second client (``harness.distclient``) for this registry, over TLS when it has it."""
        from harness.distclient import DistributionClient

        reg = self.registry
        cafile = str(reg.cert_dir / "ca.crt") if reg.tls else None
        return DistributionClient(reg.address, reg.user, reg.password, scheme=reg.scheme, cafile=cafile)

    def _alerts(self) -> str:
        """The stack's SNS topic (the guard's notices) with a queue subscribed to read them."""
        sns, sqs = self.emulator.client("sns"), self.emulator.client("sqs")
        topic = sns.create_topic(Name=f"{self.bucket}-alerts")["TopicArn"]
        queue = sqs.create_queue(QueueName=f"{self.bucket}-alerts")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
        return str(queue)

    def notices(self) -> list[dict[str, str]]:
        """The SNS notices published since the last call (subject, message)."""
        import json

        sqs, out = self.emulator.client("sqs"), []
        while self.alerts_queue:
            got = (
                sqs.receive_message(QueueUrl=self.alerts_queue, MaxNumberOfMessages=10).get("Messages") or []
            )
            if not got:
                break
            for message in got:
                body = json.loads(message["Body"])
                out.append({"subject": body.get("Subject", ""), "message": body.get("Message", "")})
                sqs.delete_message(QueueUrl=self.alerts_queue, ReceiptHandle=message["ReceiptHandle"])
        return out

    def _journal(self) -> Any:
        import os

        from harness.journal_endpoint import JournalEndpoint

        self.reports_bucket = f"{self.bucket}-reports"
        self.s3.create_bucket(Bucket=self.reports_bucket)
        self.journal_secret = secrets.token_urlsafe(24)
        arn = self.emulator.client("secretsmanager").create_secret(
            Name=f"{self.bucket}-journal", SecretString=self.journal_secret
        )["ARN"]
        self.journal_secret_arn = str(arn)
        # the handler runs in this process: its environment is set while it loads and makes its clients
        # (JournalEndpoint does both at once), then this process's environment is put back as it was
        env = {
            **self.client_env(),
            "REPORTS_BUCKET": self.reports_bucket,
            "JOURNAL_SECRET_ARN": arn,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_SERVICE_NAME": "regvault",
            "POWERTOOLS_METRICS_NAMESPACE": "regvault",
            "POWERTOOLS_LOG_LEVEL": "WARNING",  # the demo's screen: refusals only
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        saved = {name: os.environ.get(name) for name in env}
        os.environ.update(env)
        try:
            endpoint = JournalEndpoint()
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self._closing.append(endpoint.close)
        return endpoint

    def push(self, image: BuiltImage, destination: str, *, docker_v2s2: bool = False) -> str:
        """Push a tagged image of ``self.layout`` to ``repo:tag``; return the digest the registry stored."""
        return self.skopeo.push(
            self.layout, image.ref, destination, all_images=image.is_index, docker_v2s2=docker_v2s2
        )

    def layout_key_of_blob(self, digest: str) -> str:
        from regvault.storage.digest import Digest
        from regvault.storage.layout import BlobData, RegistryLayout

        return RegistryLayout(self.root).key(BlobData(Digest.parse(digest)))

    def client_env(self) -> dict[str, str]:
        return {**self.emulator.client_env(), "REGVAULT_BUCKET": self.bucket, "REGVAULT_ROOT": self.root}

    def close(self) -> None:
        for close in reversed(self._closing):
            close()
        self._closing.clear()
        self.supervisor.close()

    def __enter__(self) -> LocalRegistry:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def push_samples(env: LocalRegistry) -> dict[str, Any]:
    """The sample registry of the demo and the integration tests; returns what was pushed.

    - ``library/base:1``      OCI image, two shared base layers
    - ``team/app:1.0``, ``team/app:1.1``  OCI images on the shared base, one with a 6 MiB layer
    - ``team/api:2.0``        Docker schema2 (skopeo --format v2s2)
    - ``team/multi:1``        OCI index, children linux/amd64 and linux/arm64
    - ``team/multi-list:1``   Docker manifest list (--all --format v2s2)
    """
    lay = env.layout
    base1, base2 = lay.layer("base-1", 4096), lay.layer("base-2", 8192)
    pushed: dict[str, Any] = {}

    def push(ref: str, image: BuiltImage, destination: str, v2s2: bool = False) -> None:
        lay.tag(ref, image)
        pushed[destination] = {"image": image, "digest": env.push(image, destination, docker_v2s2=v2s2)}

    push("base", lay.image([base1, base2], label="base"), "library/base:1")
    push("app-1.0", lay.image([base1, base2, lay.layer("app-1.0")], label="app 1.0"), "team/app:1.0")
    big = lay.layer("app-1.1-big", 6 * 1024 * 1024)
    push("app-1.1", lay.image([base1, base2, big], label="app 1.1"), "team/app:1.1")
    push("api-2.0", lay.image([base1, lay.layer("api-2.0")], label="api 2.0"), "team/api:2.0", v2s2=True)
    amd = lay.image([base1, lay.layer("multi-amd64")], arch="amd64", label="multi")
    arm = lay.image([base1, lay.layer("multi-arm64")], arch="arm64", label="multi")
    push("multi", lay.index([amd, arm]), "team/multi:1")
    amd2 = lay.image([base2, lay.layer("list-amd64")], arch="amd64", label="list")
    arm2 = lay.image([base2, lay.layer("list-arm64")], arch="arm64", label="list")
    push("multi-list", lay.index([amd2, arm2]), "team/multi-list:1", v2s2=True)
    return pushed
