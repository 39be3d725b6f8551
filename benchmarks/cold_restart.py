"""Cold restart time with and without the local segment cache.

Opening a TieredStore loads the latest manifest, reads every listed segment (for the
ids, versions and payloads of the cold rows) and loads the saved FAISS index. On S3
that is a download of the whole cold tier. This benchmark fills a cold tier on an S3
server with ``--vectors`` seeded clustered vectors, then times three opens:

* ``no_cache``: a plain S3ObjectStore;
* ``cache_cold``: a CachedObjectStore with an empty cache folder (downloads and fills it);
* ``cache_warm``: a CachedObjectStore on the filled folder, as after a process restart.

It records the wall time and the bytes fetched from S3 for each. By default the server
is moto's ThreadedMotoServer on 127.0.0.1, started here.

Usage: python3 benchmarks/cold_restart.py [--vectors 50000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from machine import machine_info
from s3_demotion import raw_client, start_moto

from tiering.adapters.memory import InMemoryBackend
from tiering.cache import CachedObjectStore
from tiering.config import TieringConfig
from tiering.datasets import synthetic_clustered
from tiering.objectstore import ObjectInfo, ObjectStore
from tiering.records import Metric
from tiering.s3store import S3Config, S3ObjectStore
from tiering.store import TieredStore


class MeteredStore:
    """Counts the bytes and requests that go to the wrapped store."""

    def __init__(self, store: ObjectStore):
        self.store = store
        self.get_bytes = 0
        self.requests = 0

    def __repr__(self) -> str:
        return repr(self.store)

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        data = self.store.get(key, byte_range)
        self.get_bytes += len(data)
        self.requests += 1
        return data

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        self.requests += 1
        return self.store.put(key, data, if_none_match=if_none_match, if_match=if_match)

    def head(self, key: str) -> ObjectInfo:
        self.requests += 1
        return self.store.head(key)

    def list(self, prefix: str) -> list[ObjectInfo]:
        self.requests += 1
        return self.store.list(prefix)

    def delete(self, keys: Any) -> None:
        self.requests += 1
        self.store.delete(keys)


def fill(config: S3Config, vectors_count: int, dim: int, segment_rows: int) -> None:
    vectors, _queries = synthetic_clustered(vectors_count, dim, seed=7)
    backend = InMemoryBackend(dim, Metric.L2, capacity=vectors_count)
    settings = TieringConfig(segment_rows=segment_rows)
    with TieredStore(backend, S3ObjectStore(config), config=settings) as store:
        ids = list(range(vectors_count))
        store.upsert(ids, vectors)
        for start in range(0, vectors_count, segment_rows):
            store.mover.demote(ids[start : start + segment_rows])


def timed_open(store: ObjectStore, dim: int) -> float:
    started = time.perf_counter()
    tiered = TieredStore(InMemoryBackend(dim, Metric.L2), store)
    elapsed_s = time.perf_counter() - started
    tiered.close()
    return elapsed_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--segment-rows", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/cold_restart.json"))
    args = parser.parse_args()

    server, endpoint_url = start_moto()
    runs: list[dict[str, Any]] = []
    try:
        bucket = f"bench-{uuid.uuid4().hex[:12]}"
        raw_client(endpoint_url).create_bucket(Bucket=bucket)
        config = S3Config(bucket=bucket, prefix="restart", endpoint_url=endpoint_url)
        fill(config, args.vectors, args.dim, args.segment_rows)
        cold_bytes = sum(info.size_bytes for info in S3ObjectStore(config, writable=False).list(""))
        timed_open(S3ObjectStore(config, writable=False), args.dim)  # warm-up, not recorded

        for repeat in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="tiering-cache-") as folder:
                run: dict[str, Any] = {}
                for name in ("no_cache", "cache_cold", "cache_warm"):
                    metered = MeteredStore(S3ObjectStore(config, writable=False))
                    store: ObjectStore = metered if name == "no_cache" else CachedObjectStore(metered, folder)
                    open_s = timed_open(store, args.dim)
                    run[name] = {"open_s": open_s, "s3_get_bytes": metered.get_bytes,
                                 "s3_requests": metered.requests}
                runs.append(run)
                print(f"run {repeat}: " + ", ".join(
                    f"{name} {values['open_s']:.2f} s ({values['s3_get_bytes'] / 2**20:.1f} MiB)"
                    for name, values in run.items()
                ), flush=True)
    finally:
        server.stop()

    summary = {
        name: {
            "open_s_median": statistics.median(run[name]["open_s"] for run in runs),
            "s3_get_bytes": runs[-1][name]["s3_get_bytes"],
        }
        for name in ("no_cache", "cache_cold", "cache_warm")
    }
    summary["speedup_warm_vs_no_cache"] = (
        summary["no_cache"]["open_s_median"] / summary["cache_warm"]["open_s_median"]
    )
    result = {
        "benchmark": "cold_restart",
        "parameters": {
            "dataset": "synthetic_clustered seed 7",
            "vectors": args.vectors,
            "dim": args.dim,
            "segment_rows": args.segment_rows,
            "cold_tier_bytes": cold_bytes,
            "server": "moto ThreadedMotoServer",
            "repeats": args.repeats,
        },
        "runs": runs,
        "summary": summary,
        "machine": machine_info(),
        "load_average_1m_at_end": os.getloadavg()[0],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
