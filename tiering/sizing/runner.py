"""The sweep runner: build each configuration, run the query stream, record raw results.

Phases per configuration, timed separately: partition and build the shards, a serial
pass (one query at a time, for latency and work per query), and a concurrent pass
(``concurrency`` threads, for throughput). FAISS searches run on one OpenMP thread, so
serial latency is single-core work and threads are the only parallelism in the
concurrent pass. Builds use every core.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
import numpy.typing as npt

from tiering.errors import ValidationError
from tiering.sizing import engines
from tiering.sizing.records import RunRecord
from tiering.sizing.shards import (
    FaissShard,
    Partition,
    ShardedIndex,
    ShardIndex,
    partition_by_id,
    partition_by_kmeans,
)
from tiering.sizing.specs import IndexSpec, RoutingSpec
from tiering.sizing.workload import SizingData, Workload, hot_count, hot_ids


class SweepProgress(Protocol):
    """Receives progress: a new configuration with its step count, then steps done."""

    def start(self, description: str, total: int) -> None:
        """Begin a configuration of ``total`` steps."""
        ...

    def advance(self, steps: int) -> None:
        """Count ``steps`` more steps as done."""
        ...


@dataclass(frozen=True)
class SweepConfig:
    """What the sweep varies (shards, routing, index, hot fraction) and fixes."""

    shard_counts: tuple[int, ...]
    routings: tuple[RoutingSpec, ...]
    indexes: tuple[IndexSpec, ...]
    hot_fractions: tuple[float, ...]
    backend: str = "faiss"
    cold_index: IndexSpec = field(default_factory=lambda: IndexSpec("flat"))
    seed: int = 0
    runs: int = 1
    """Times the serial and concurrent passes are repeated; the fastest counts."""

    @property
    def size(self) -> int:
        """Number of configurations measured."""
        return (
            len(self.shard_counts) * len(self.routings) * len(self.indexes) * len(self.hot_fractions)
        )


def check_sweep(data: SizingData, workload: Workload, config: SweepConfig) -> None:
    """Reject a sweep that cannot run on this data before anything is built.

    Raises:
        ValidationError: a shard count larger than the smallest hot set, or k larger
            than the data.
    """
    n = len(data.base)
    if workload.k > n:
        raise ValidationError(f"k={workload.k} is larger than the {n} base vectors. Lower --k.")
    smallest_hot = min(hot_count(n, fraction) for fraction in config.hot_fractions)
    largest = max(config.shard_counts)
    if largest > smallest_hot:
        raise ValidationError(
            f"Shard count {largest} is larger than the data: the smallest hot set has "
            f"{smallest_hot} vectors ({n} base vectors x hot fraction "
            f"{min(config.hot_fractions)}). Use fewer shards or a larger hot fraction."
        )
    if config.backend not in engines.BACKENDS:
        raise ValidationError(
            f"Unknown backend {config.backend!r}. Use one of: {', '.join(engines.BACKENDS)}."
        )


def run_sweep(
    data: SizingData,
    workload: Workload,
    config: SweepConfig,
    *,
    progress: SweepProgress | None = None,
) -> Iterator[RunRecord]:
    """Measure every configuration of ``config`` and yield one raw record each.

    Raises:
        ValidationError: see :func:`check_sweep`.
        BackendError: a real vector store failed.
    """
    check_sweep(data, workload, config)
    truth_rows = data.ground_truth[workload.query_rows, : workload.k]
    with tempfile.TemporaryDirectory(prefix="tiering-size-") as workdir:
        for hot_fraction in config.hot_fractions:
            hot = hot_ids(len(data.base), truth_rows, hot_fraction, seed=config.seed)
            cold = np.setdiff1d(np.arange(len(data.base), dtype=np.int64), hot)
            cold_shard = _build_cold(data, cold, config.cold_index)
            for routing in config.routings:
                for shards in config.shard_counts:
                    partition_started = time.perf_counter()
                    partition = _partition(data, hot, shards, routing, config.seed)
                    partition_s = time.perf_counter() - partition_started
                    for index in config.indexes:
                        setup = _Setup(
                            hot_fraction, hot, cold, cold_shard, routing, shards,
                            partition, partition_s, index,
                        )
                        yield _measure(data, workload, config, Path(workdir), setup, progress)
            if cold_shard is not None:
                cold_shard.close()


@dataclass(frozen=True)
class _Setup:
    hot_fraction: float
    hot: npt.NDArray[np.int64]
    cold: npt.NDArray[np.int64]
    cold_shard: FaissShard | None
    routing: RoutingSpec
    shards: int
    partition: Partition
    partition_s: float
    index: IndexSpec


def _build_cold(
    data: SizingData, cold: npt.NDArray[np.int64], spec: IndexSpec
) -> FaissShard | None:
    if len(cold) == 0:
        return None
    return FaissShard(spec, data.base[cold], cold, data.metric)


def _partition(
    data: SizingData, hot: npt.NDArray[np.int64], shards: int, routing: RoutingSpec, seed: int
) -> Partition:
    if routing.kind == "all":
        return partition_by_id(hot, shards)
    return partition_by_kmeans(data.base[hot], hot, shards, seed=seed)


def _measure(
    data: SizingData,
    workload: Workload,
    config: SweepConfig,
    workdir: Path,
    setup: _Setup,
    progress: SweepProgress | None,
) -> RunRecord:
    label = (
        f"shards={setup.shards} routing={setup.routing.label} index={setup.index.label} "
        f"hot={setup.hot_fraction:g}"
    )
    if progress is not None:
        progress.start(label, setup.shards + 2 * config.runs * len(workload.query_rows))

    build_started = time.perf_counter()
    shard_indexes: list[ShardIndex | None] = []
    for number, shard_ids in enumerate(setup.partition.shard_ids):
        shard_indexes.append(_build_shard(data, config, setup, workdir, number, shard_ids))
        if progress is not None:
            progress.advance(1)
    build_s = time.perf_counter() - build_started
    sharded = ShardedIndex(shard_indexes, setup.routing, setup.partition.centroids, setup.cold_shard)

    try:
        with _single_thread_faiss():
            queries = _serial_pass(data, workload, sharded, progress)
            for _ in range(config.runs - 1):
                _repeat_serial_pass(data, workload, sharded, queries, progress)
            walls_s = [
                _concurrent_pass(data, workload, sharded, progress) for _ in range(config.runs)
            ]
    finally:
        for shard in shard_indexes:
            if shard is not None:
                shard.close()

    effective = [s.effective_spec.label for s in shard_indexes if isinstance(s, FaissShard)]
    params = {
        "dataset": data.name,
        "metric": data.metric.value,
        "n_base": len(data.base),
        "dim": data.dim,
        "backend": config.backend,
        "shards": setup.shards,
        "routing": setup.routing.label,
        # Qdrant local mode and Milvus Lite choose their own index, so the FAISS spec
        # does not describe them.
        "index": setup.index.label if config.backend == "faiss" else f"{config.backend}-local",
        "index_effective": sorted(set(effective)) or [setup.index.label],
        "hot_fraction": setup.hot_fraction,
        "hot_vectors": len(setup.hot),
        "cold_vectors": len(setup.cold),
        "cold_index": config.cold_index.label,
        "k": workload.k,
        "zipf": workload.zipf,
        "concurrency": workload.concurrency,
        "query_count": len(workload.query_rows),
        "seed": config.seed,
        "runs": config.runs,
    }
    throughput = {
        "concurrency": workload.concurrency,
        "queries": len(workload.query_rows),
        "wall_s": min(walls_s),
        "wall_runs_s": walls_s,
    }
    build = {
        "shard_sizes": [s.size if s is not None else 0 for s in shard_indexes],
        "shard_index_bytes": [s.index_bytes if s is not None else 0 for s in shard_indexes],
        "cold_index_bytes": setup.cold_shard.index_bytes if setup.cold_shard is not None else 0,
        "build_s": build_s,
        "partition_s": setup.partition_s,
        "cold_build_s": setup.cold_shard.build_s if setup.cold_shard is not None else 0.0,
    }
    return RunRecord(params, build, queries, throughput)


def _build_shard(
    data: SizingData,
    config: SweepConfig,
    setup: _Setup,
    workdir: Path,
    number: int,
    shard_ids: npt.NDArray[np.int64],
) -> ShardIndex | None:
    if len(shard_ids) == 0:
        return None
    vectors = data.base[shard_ids]
    if config.backend == "faiss":
        return FaissShard(setup.index, vectors, shard_ids, data.metric)
    name = (
        f"s{setup.shards}_{setup.routing.kind}{setup.routing.probes}_"
        f"h{int(setup.hot_fraction * 1000)}_n{number}"
    )
    backend = engines.open_backend(
        config.backend, name=name, dim=data.dim, metric=data.metric, workdir=workdir
    )
    return engines.BackendShard(backend, vectors, shard_ids)


def _serial_pass(
    data: SizingData, workload: Workload, sharded: ShardedIndex, progress: SweepProgress | None
) -> list[dict[str, Any]]:
    for row in workload.query_rows[:5]:
        sharded.search_one(data.queries[row : row + 1], workload.k)

    results = []
    for row in workload.query_rows:
        query = data.queries[row : row + 1]
        started = time.perf_counter()
        result = sharded.search_one(query, workload.k)
        latency_s = time.perf_counter() - started
        results.append(
            {
                "query_row": int(row),
                "ids": result.ids.tolist(),
                "scores": [round(float(s), 5) for s in result.scores],
                "truth": data.ground_truth[row, : workload.k].tolist(),
                "latency_s": latency_s,
                "latency_runs_s": [latency_s],
                "shards_searched": result.shards_searched,
                "distance_count": result.distance_count,
                "hot_distance_count": result.hot_distance_count,
                "cold_hits": result.cold_hits,
            }
        )
        if progress is not None:
            progress.advance(1)
    return results


def _repeat_serial_pass(
    data: SizingData,
    workload: Workload,
    sharded: ShardedIndex,
    results: list[dict[str, Any]],
    progress: SweepProgress | None,
) -> None:
    # A whole pass is repeated, not each query in a row, so caches are as warm as in
    # the first pass. The fastest run of each query is its latency.
    for entry, row in zip(results, workload.query_rows, strict=True):
        query = data.queries[row : row + 1]
        started = time.perf_counter()
        sharded.search_one(query, workload.k)
        latency_s = time.perf_counter() - started
        entry["latency_runs_s"].append(latency_s)
        entry["latency_s"] = min(entry["latency_s"], latency_s)
        if progress is not None:
            progress.advance(1)


def _concurrent_pass(
    data: SizingData, workload: Workload, sharded: ShardedIndex, progress: SweepProgress | None
) -> float:
    rows = workload.query_rows
    slices = [rows[i :: workload.concurrency] for i in range(workload.concurrency)]

    def run(part: npt.NDArray[np.int64]) -> int:
        for row in part:
            sharded.search_one(data.queries[row : row + 1], workload.k)
        return len(part)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workload.concurrency) as pool:
        done = sum(pool.map(run, slices))
    wall_s = time.perf_counter() - started
    if progress is not None:
        progress.advance(done)
    return wall_s


@contextlib.contextmanager
def _single_thread_faiss() -> Iterator[None]:
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
