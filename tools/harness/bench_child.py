"""The measured side of ``make bench``, one process per measurement (so RSS and CPU are its own).

``python -m harness.bench_child COUNTS.json <regvault arguments…>`` runs the regvault CLI
unchanged and writes the S3 requests it sent, by API, as counted by the botocore ``before-send``
hook every ``S3Store`` registers (``regvault.aws.clients.RequestCounter``).

``python -m harness.bench_child --deep WORKERS KEY…`` hashes the keys (latest versions) of
``$REGVAULT_BUCKET`` the way ``regvault audit --deep`` does — ``S3Store.stream_sha256`` (1 MiB chunks)
on a pool of WORKERS threads — and prints ``{"seconds": …, "bytes": …}``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from regvault.aws.clients import RequestCounter, s3_client
from regvault.aws.s3 import S3Store


def count_requests(counts_path: Path, argv: list[str]) -> int:
    from regvault.cli.main import main

    seen: Counter[str] = Counter()
    original = RequestCounter.__call__

    def counting(self: RequestCounter, event_name: str = "", **kwargs: Any) -> None:
        seen[event_name.rsplit(".", 1)[-1]] += 1
        original(self, event_name=event_name, **kwargs)

    RequestCounter.__call__ = counting  # type: ignore[method-assign]
    try:
        return main(argv)
    finally:
        counts_path.write_text(json.dumps(dict(seen)))


def deep(workers: int, keys: list[str]) -> int:
    store = S3Store(os.environ["REGVAULT_BUCKET"], s3_client(max_pool_connections=max(16, workers)))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = [size for _, size in pool.map(store.stream_sha256, keys)]
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "bytes": sum(sizes), "requests": store.requests.total}))
    return 0


class _MemoryClient:
    """Just enough of an S3 client to serve bodies from memory: isolates regvault's hashing path
    (StreamingBody.iter_chunks, sha256, the thread pool) from any server's cost."""

    class meta:
        endpoint_url = "memory://"

        class events:
            @staticmethod
            def register(*_: Any) -> None:
                return None

    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        import io

        from botocore.response import StreamingBody

        data = self.blobs[Key]
        return {"Body": StreamingBody(io.BytesIO(data), len(data))}


def deep_memory(workers: int, count: int, blob_mib: int, seed: int) -> int:
    """regvault's blob verification vs plain hashlib over the same in-memory bytes, same process."""
    import hashlib
    import random

    rng = random.Random(seed)  # noqa: S311 - data, not secrets
    blobs = {f"blob-{i}": rng.randbytes(blob_mib * 1024 * 1024) for i in range(count)}
    started = time.perf_counter()
    for data in blobs.values():
        hashlib.sha256(data).hexdigest()
    plain = time.perf_counter() - started
    store = S3Store("memory", _MemoryClient(blobs))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = [size for _, size in pool.map(store.stream_sha256, blobs)]
    ours = time.perf_counter() - started
    print(json.dumps({"seconds": ours, "hashlib_seconds": plain, "bytes": sum(sizes)}))
    return 0


def raw_client(keys: list[str]) -> int:
    """The plain way, for comparison: boto3 get_object().read() and hashlib, one key after another."""
    import hashlib

    client = s3_client()
    bucket = os.environ["REGVAULT_BUCKET"]
    started = time.perf_counter()
    total = 0
    for key in keys:
        data = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        hashlib.sha256(data).hexdigest()
        total += len(data)
    print(json.dumps({"seconds": time.perf_counter() - started, "bytes": total}))
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--deep":
        return deep(int(argv[1]), argv[2:])
    if argv and argv[0] == "--deep-memory":
        return deep_memory(*(int(x) for x in argv[1:5]))
    if argv and argv[0] == "--raw-client":
        return raw_client(argv[1:])
    return count_requests(Path(argv[0]), argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
