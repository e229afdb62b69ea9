"""regvault repair and self-healing on what the real registry wrote: distribution's own
`garbage-collect --delete-untagged` breaks an index (its children swept, distribution #3004) and an
S3-level delete breaks an image; the grouped audit names both with the command that repairs each, and
self-healing (AutoRepair's use case) repairs both in place; skopeo and a second client pull them."""

import json

from harness.distclient import DistributionClient
from harness.local import LocalRegistry
from regvault.audit.run import AuditRequest, run_audit
from regvault.aws.s3 import S3Store
from regvault.repair.usecase import heal
from regvault.storage.layout import RegistryLayout


class Restarter:
    def __init__(self, env):
        self.env, self.restarts = env, 0

    def restart(self):
        self.env.registry.restart()  # what the Lambda does through SSM: drop the blob-descriptor cache
        self.restarts += 1
        return f"local-{self.restarts}"


def _versions(env):
    out = set()
    for page in env.s3.get_paginator("list_object_versions").paginate(Bucket=env.bucket):
        out |= {(v["Key"], v["VersionId"]) for v in page.get("Versions", [])}
    return out


def test_self_healing_repairs_what_gc_and_an_s3_delete_broke(tmp_path, capsys):
    with LocalRegistry(tmp_path / "env") as env:
        lay = env.layout
        base = lay.layer("rp-base", 4096)
        amd = lay.image([base, lay.layer("rp-amd64")], arch="amd64", label="rp")
        arm = lay.image([base, lay.layer("rp-arm64")], arch="arm64", label="rp")
        index = env.push(lay.tag("multi", lay.index([amd, arm])), "rp/multi:1")
        app_image = lay.image([base, lay.layer("rp-app", 5000)], label="app")
        app = env.push(lay.tag("app", app_image), "rp/app:1")
        env.registry.garbage_collect(delete_untagged=True)  # sweeps the index's children
        big = max(app_image.blobs.items(), key=lambda kv: kv[1])[0]
        env.s3.delete_object(Bucket=env.bucket, Key=env.layout_key_of_blob(big))
        env.registry.restart()
        store, layout = S3Store(env.bucket, env.s3), RegistryLayout("")

        broken = run_audit(store, layout, AuditRequest(usage=False))
        groups = {f"{g.repository}:{g.tag}": g for g in broken.images}
        assert set(groups) == {"rp/multi:1", "rp/app:1"} and all(g.recoverable for g in groups.values())
        assert groups["rp/multi:1"].command == f"regvault restore rp/multi:1 --to {index} --apply"
        # registry:2 keeps the children's manifest blobs (the index marks them) but sweeps their revision
        # links and layers
        assert {m["code"] for m in groups["rp/multi:1"].missing} == {"BLOB_MISSING", "REVISION_LINK_MISSING"}
        assert {m["code"] for m in groups["rp/app:1"].missing} == {"BLOB_MISSING"}
        before = _versions(env)

        restarter = Restarter(env)
        doc = heal(store, layout, restarter=restarter)
        assert doc["applied"] and doc["errors_after"] == 0 and doc["recoverable_left"] == 0
        assert {i["status"] for i in doc["images"]} == {"repaired"} and restarter.restarts == 1
        assert before <= _versions(env)  # copy-forward only: every version is still there
        assert run_audit(store, layout, AuditRequest(usage=False)).summary["errors"] == 0

        client = DistributionClient(env.registry.address, env.registry.user, env.registry.password)
        for reference, digest in (("rp/multi:1", index), ("rp/app:1", app)):
            env.skopeo.pull(reference, tmp_path / reference.replace("/", "_"), all_images=True)
            repository, tag = reference.split(":")
            client.pull(repository, tag)
            assert json.loads(env.skopeo.inspect_raw(reference))  # served
            assert env.skopeo.inspect_raw(f"{repository}@{digest}")
