"""Core benchmarks, each a side-by-side comparison inside one run.

1. Search overhead: ``TieredStore.search`` on the hot path versus the same search made
   with qdrant-client directly (``query_points``), on SIFT small in Qdrant local mode.
   Both run interleaved, query by query, so machine noise hits both alike.
2. Access tracker: hits recorded per second and bytes per tracked id.
3. Demotion throughput: ``TieredStore.tier()`` demoting 80% of SIFT small versus
   pyarrow writing the same vectors to a zstd Parquet file on its own.

Run: ``python benchmarks/core.py [--rounds N] [--out benchmarks/results/core.json]``.
Prints a table and writes the raw measurements with the machine and versions.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from machine import machine_info
from qdrant_client import QdrantClient

from tiering.access import AccessTracker
from tiering.adapters.memory import InMemoryBackend
from tiering.adapters.qdrant import QdrantBackend
from tiering.config import TieringConfig
from tiering.datasets import load_bundled
from tiering.policy import HotBudget, PolicyConfig
from tiering.store import TieredStore

TIER_ALL = TieringConfig(policy=PolicyConfig(budget=HotBudget(max_fraction=0.2), min_idle_s=0, cooldown_s=0))


def search_overhead(rounds: int) -> dict[str, Any]:
    """Time the proxy and the direct client call on the same queries, interleaved."""
    data = load_bundled("siftsmall")
    client = QdrantClient(":memory:")
    backend = QdrantBackend(client, "bench", 128, "l2")
    with tempfile.TemporaryDirectory() as cold:
        store = TieredStore(backend, cold)
        store.upsert(list(range(len(data.base))), data.base)
        proxy_s: list[float] = []
        direct_s: list[float] = []
        for _ in range(rounds):
            for query in data.queries:
                as_list = query.tolist()
                started = time.perf_counter()
                client.query_points("bench", query=as_list, limit=10, with_payload=True)
                direct_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                store.search(query, 10)
                proxy_s.append(time.perf_counter() - started)
        store.close()
    return {
        "queries": len(proxy_s),
        "direct_median_ms": float(np.median(direct_s) * 1000),
        "proxy_median_ms": float(np.median(proxy_s) * 1000),
        "ratio_median": float(np.median(proxy_s) / np.median(direct_s)),
        "ratio_p99": float(np.percentile(proxy_s, 99) / np.percentile(direct_s, 99)),
    }


def tracker_throughput(ids_tracked: int = 1_000_000, batches: int = 20_000) -> dict[str, Any]:
    """Measure hits recorded per second in search-sized batches and bytes per id."""
    tracker = AccessTracker(half_life_s=3600.0)
    started = time.perf_counter()
    tracker.register(list(range(ids_tracked)), now_s=0.0)
    register_s = time.perf_counter() - started
    rng = np.random.default_rng(0)
    draws = rng.integers(0, ids_tracked, size=(batches, 10)).tolist()
    started = time.perf_counter()
    for n, batch in enumerate(draws):
        tracker.record(batch, now_s=float(n))
    record_s = time.perf_counter() - started
    big = rng.integers(0, ids_tracked, size=1_000_000).tolist()
    started = time.perf_counter()
    tracker.record(big, now_s=float(batches))
    bulk_s = time.perf_counter() - started
    return {
        "ids_tracked": ids_tracked,
        "register_ids_per_s": ids_tracked / register_s,
        "hits_per_s_batches_of_10": batches * 10 / record_s,
        "hits_per_s_batch_of_1m": len(big) / bulk_s,
        "bytes_per_tracked_id": tracker.memory_bytes() / ids_tracked,
        "saved_bytes_per_id": len(tracker.to_bytes()) / ids_tracked,
    }


def _write_parquet(vectors: np.ndarray) -> None:
    table = pa.table(
        {
            "id": pa.array([str(i) for i in range(len(vectors))]),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1]),
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    Path(tempfile.gettempdir(), "tiering-bench.parquet").write_bytes(sink.getvalue())


def demotion_throughput(backend_name: str) -> dict[str, Any]:
    """Demote 80% of SIFT small and write the same vectors with pyarrow alone."""
    data = load_bundled("siftsmall")
    backend: Any = (
        InMemoryBackend(128, "l2")
        if backend_name == "memory"
        else QdrantBackend(QdrantClient(":memory:"), "bench", 128, "l2")
    )
    with tempfile.TemporaryDirectory() as cold:
        store = TieredStore(backend, cold, config=TIER_ALL)
        store.upsert(list(range(len(data.base))), data.base)
        _write_parquet(data.base[:100])  # warm-up: the first Parquet write imports pandas
        started = time.perf_counter()
        result = store.tier()
        demote_s = time.perf_counter() - started
        store.close()
    demoted = result.demoted
    started = time.perf_counter()
    _write_parquet(data.base[:demoted])
    pyarrow_s = time.perf_counter() - started
    return {
        "backend": backend_name,
        "vectors": demoted,
        "demote_vectors_per_s": demoted / demote_s,
        "pyarrow_vectors_per_s": demoted / pyarrow_s,
        "ratio_time": demote_s / pyarrow_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="passes over the 100 queries")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "core.json")
    args = parser.parse_args()

    results: dict[str, Any] = {"machine": machine_info()}
    print("search overhead ...", flush=True)
    results["search_overhead"] = search_overhead(args.rounds)
    print(json.dumps(results["search_overhead"], indent=2))
    print("access tracker ...", flush=True)
    results["access_tracker"] = tracker_throughput()
    print(json.dumps(results["access_tracker"], indent=2))
    print("demotion ...", flush=True)
    results["demotion"] = [demotion_throughput("memory"), demotion_throughput("qdrant")]
    print(json.dumps(results["demotion"], indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
