"""The registry generator writes what the real registry + skopeo write: same keys, same link and
blob contents, same version patterns (upload UUIDs and timestamps aside)."""

import hashlib
import re
from collections import Counter, defaultdict

from harness.emulator import S3Emulator
from harness.generator import RegistrySimulator, image_from_oci, write_preload
from harness.local import LocalRegistry

from .support import registry_request

UPLOAD = re.compile(r"^(?P<repo>.*)/_uploads/(?P<uuid>[0-9a-f-]{36})/(?P<rest>.+)$")


def _listing(s3, bucket):
    """{(key, version id): (kind, size, is latest)}: boto3 splits versions from delete markers, so the
    listing alone cannot order a key's versions; the steps below do."""
    out = {}
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for v in page.get("Versions", []):
            out[(v["Key"], v["VersionId"])] = ("D", v["Size"], v["IsLatest"])
        for v in page.get("DeleteMarkers", []):
            out[(v["Key"], v["VersionId"])] = ("X", 0, v["IsLatest"])
    return out


def _body_hash(s3, bucket, key, version_id):
    return hashlib.sha256(
        s3.get_object(Bucket=bucket, Key=key, VersionId=version_id)["Body"].read()
    ).hexdigest()


def _normalize(events):
    """events: {key: [(step, kind, size, body sha256 or None)]} -> comparable form (UUIDs dropped)."""
    plain, by_upload = {}, defaultdict(dict)
    for key, items in events.items():
        # within one step a key's data versions precede its delete marker (commit, then cleanup)
        items = sorted(items, key=lambda item: (item[0], item[1] == "X"))
        match = UPLOAD.match(key)
        if match and match["rest"] != "data":  # startedat holds a time, hash states Go's state: sizes
            by_upload[(match["repo"], match["uuid"])][match["rest"]] = tuple(
                (s, k, n) for s, k, n, _ in items
            )
        elif match:
            by_upload[(match["repo"], match["uuid"])]["data"] = tuple(items)
        else:
            plain[key] = [tuple(item) for item in items]
    uploads = defaultdict(list)
    for (repo, _), files in by_upload.items():
        uploads[repo].append(tuple(sorted(files.items())))
    return plain, {repo: sorted(sigs) for repo, sigs in uploads.items()}


def test_generated_registry_matches_what_the_real_registry_wrote(tmp_path):
    with LocalRegistry(tmp_path / "real") as env:
        lay = env.layout
        base1, base2 = lay.layer("fid-base-1", 3000), lay.layer("fid-base-2", 1500)
        one = lay.tag("one", lay.image([base1, base2, lay.layer("fid-one")], label="one"))
        two = lay.tag("two", lay.image([base1, lay.layer("fid-two")], label="two"))
        three = lay.tag("three", lay.image([base1, base2, lay.layer("fid-three")], label="three"))
        amd = lay.image([base2, lay.layer("fid-amd")], arch="amd64", label="m")
        arm = lay.image([base2, lay.layer("fid-arm")], arch="arm64", label="m")
        multi = lay.tag("multi", lay.index([amd, arm]))
        four = lay.tag("four", lay.image([base1, lay.layer("fid-four")], label="four"))
        sim = RegistrySimulator()
        real_events, seen, step_ends = defaultdict(list), {}, []

        def step():
            """Record which versions the real registry wrote in this step (and where the sim is)."""
            now = _listing(env.s3, env.bucket)
            for (key, version_id), (kind, size, _) in now.items():
                if (key, version_id) not in seen:
                    body = _body_hash(env.s3, env.bucket, key, version_id) if kind == "D" else None
                    real_events[key].append((len(step_ends), kind, size, body))
            seen.update(now)
            step_ends.append(len(sim.ops))

        def both_push(image, destination):
            repo, tag = destination.split(":")
            assert env.push(image, destination) == image.digest
            sim.push(repo, tag, image_from_oci(lay.path, image.digest))
            step()

        # the real registry and the simulator go through the same history
        both_push(one, "fid/app:1")
        both_push(one, "fid/app:2")  # same image, second tag
        both_push(two, "fid/svc:1")  # shares base1 with fid/app: skopeo mounts it
        both_push(three, "fid/app:1")  # overwrites a tag
        both_push(multi, "fid/app:multi")  # an OCI index and its two children
        assert registry_request(env, "DELETE", f"/v2/fid/svc/manifests/{two.digest}") == 202
        sim.delete_manifest("fid/svc", two.digest)
        step()
        both_push(four, "fid/svc:1")  # the deleted tag pushed again
        both_push(three, "fid/app:2")  # image one is now untagged: GC removes its tag index links
        env.registry.garbage_collect(delete_untagged=True)
        sim.garbage_collect(delete_untagged=True)
        step()
        env.registry.restart()  # forget what the registry cached about swept blobs
        both_push(two, "fid/svc:2")  # its layer and config were swept: uploaded again

        preload = tmp_path / "generated.pickle"
        write_preload(preload, "generated", sim.ops)
        generated = S3Emulator(env.supervisor, preload=preload, name="generated")
        gen_listing = _listing(generated.client("s3"), "generated")
        gen_s3 = generated.client("s3")
        gen_bodies = Counter(
            (key, _body_hash(gen_s3, "generated", key, vid))
            for (key, vid), (k, _, _) in gen_listing.items()
            if k == "D"
        )

    # the simulator's writes, step by step, in the same form
    gen_events, start = defaultdict(list), 0
    for number, end in enumerate(step_ends):
        for op in sim.ops[start:end]:
            body = hashlib.sha256(op.body).hexdigest() if op.body is not None else None
            gen_events[op.key].append(
                (number, "D" if op.body is not None else "X", len(op.body or b""), body)
            )
        start = end
    real_plain, real_uploads = _normalize(real_events)
    gen_plain, gen_uploads = _normalize(gen_events)

    # the history exercised every pattern the generator claims to write
    patterns = {tuple(kind for _, kind, _, _ in items) for items in real_plain.values()}
    assert {("D", "X"), ("D", "D"), ("D", "X", "D")} <= patterns  # GC, overwrites, re-push after GC
    assert sum(len(s) for s in real_uploads.values()) >= 12
    svc_base1 = f"fid/svc/_layers/sha256/{base1.digest[7:]}/link"
    assert any(k.endswith(svc_base1) for k in real_plain)  # mounted, not uploaded, into fid/svc
    # Then: the same keys, each with the same versions (step, kind, size, content) in the same order
    assert set(gen_plain) == set(real_plain)
    for key, items in real_plain.items():
        assert gen_plain[key] == items, key
    # and the same uploads per repository (which blob, which files, which version patterns)
    assert gen_uploads == real_uploads
    # and the preload put exactly those writes into the emulator (each key's latest kind included)
    assert len(gen_listing) == len(sim.ops)
    assert gen_bodies == Counter(
        (op.key, hashlib.sha256(op.body).hexdigest()) for op in sim.ops if op.body is not None
    )
    latest = {key: kind for (key, _), (kind, _, is_latest) in gen_listing.items() if is_latest}
    assert latest == {op.key: "D" if op.body is not None else "X" for op in sim.ops}
