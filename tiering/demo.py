"""The demo: a Zipf-skewed query stream over real vectors, tiered until the hot tier is small.

Steps:

1. Load the vectors into the backend through a TieredStore.
2. Measure recall@k and latency with every vector hot.
3. Replay a seeded Zipf stream of the queries on a simulated clock (one search per
   simulated second), with a tiering pass every ``pass_every`` searches.
4. Run more passes until the hot fraction is reached.
5. Measure again with the cold tier searched (``tiered``) and without it (``hot_only``).
6. Price both layouts with the dated catalog.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tiering.backend import Backend
from tiering.config import ColdSearch, TieringConfig
from tiering.cost import estimate_tiering_cost
from tiering.datasets import Dataset, exact_ground_truth, hdf5_metric, load_bundled, load_ids, load_vectors
from tiering.errors import ConfigurationError, ValidationError
from tiering.metrics import percentile_ms, recall_at_k
from tiering.policy import HotBudget, PolicyConfig
from tiering.records import Metric
from tiering.store import TieredStore

Progress = Callable[[str, int, int], None]
"""Called with (phase name, done, total) while the demo works."""

BACKENDS = ("qdrant", "milvus", "memory")
MAX_EXTRA_PASSES = 20


@dataclass(frozen=True)
class DemoSettings:
    """Input, backend and workload of one demo run; times are simulated seconds."""

    backend: str = "qdrant"
    base: Path | None = None
    queries: Path | None = None
    groundtruth: Path | None = None
    metric: str | None = None
    k: int = 10
    searches: int = 5000
    zipf_s: float = 1.1
    seed: int = 0
    hot_fraction: float = 0.2
    pass_every: int = 250
    half_life_s: float = 600.0
    min_idle_s: float = 300.0
    price_model: str = "pinecone-serverless"
    queries_per_month: float = 5_000_000
    modeled_vectors: int = 10_000_000
    latency_rounds: int = 3
    cold_dir: Path | None = None


class SimulatedClock:
    """A clock that advances only when :meth:`advance` is called."""

    def __init__(self, start_s: float = 1_000_000.0):
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def load_input(settings: DemoSettings, progress: Progress | None = None) -> Dataset:
    """Return the bundled SIFT small set, or the user's files with exact ground truth.

    An ann-benchmarks HDF5 file given as ``--base`` alone supplies its own queries
    (``test``) and ground truth (``neighbors``).

    Raises:
        ValidationError: a file is missing or unreadable, or shapes and ids do not fit.
    """
    if settings.base is None:
        if settings.queries is not None or settings.groundtruth is not None or settings.metric is not None:
            raise ValidationError(
                "--queries, --groundtruth and --metric describe --base; pass --base as well."
            )
        return load_bundled("siftsmall")
    is_hdf5 = settings.base.suffix.lower() in (".hdf5", ".h5")
    queries_path = settings.queries or (settings.base if is_hdf5 else None)
    if queries_path is None:
        raise ValidationError("--base needs --queries: the demo replays those queries.")
    groundtruth_path = settings.groundtruth
    if groundtruth_path is None and is_hdf5 and settings.queries is None:
        groundtruth_path = settings.base
    metric = Metric.parse(settings.metric or (hdf5_metric(settings.base) if is_hdf5 else "l2"))
    base = _finite(load_vectors(settings.base), settings.base)
    queries = _finite(load_vectors(queries_path, split="test"), queries_path)
    if base.shape[1] != queries.shape[1]:
        raise ValidationError(
            f"Base vectors are {base.shape[1]}-d but queries are {queries.shape[1]}-d; "
            "pass files of the same dimension."
        )
    if len(base) < settings.k:
        raise ValidationError(
            f"{settings.base} contains {len(base)} vectors, fewer than k={settings.k}; pass a larger base."
        )
    if groundtruth_path is not None:
        truth = load_ids(groundtruth_path)
        _check_truth(truth, groundtruth_path, len(queries), len(base), settings.k)
    else:
        done = 0

        def step(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress("exact ground truth", done, len(queries))

        truth = exact_ground_truth(base, queries, settings.k, metric, progress=step)
    return Dataset(settings.base.stem, base, queries, truth, metric)


def _finite(vectors: npt.NDArray[np.float32], path: Path) -> npt.NDArray[np.float32]:
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValidationError(
            f"{path} has NaN or infinite values in row {row} "
            f"({int((~finite).sum())} rows in all). Clean the file first."
        )
    return vectors


def _check_truth(truth: npt.NDArray[np.int64], path: Path, n_queries: int, n_base: int, k: int) -> None:
    if truth.ndim != 2 or len(truth) != n_queries or truth.shape[1] < k:
        raise ValidationError(
            f"Ground truth {path} has shape {truth.shape}; expected {n_queries} rows of at least {k} ids."
        )
    low, high = int(truth[:, :k].min()), int(truth[:, :k].max())
    if low < 0 or high >= n_base:
        raise ValidationError(
            f"Ground truth {path} contains ids from {low} to {high}, but the base has rows 0 to "
            f"{n_base - 1}. Pass the neighbour ids (row numbers of --base) computed for these queries."
        )


@contextmanager
def open_backend(name: str, dim: int, metric: Metric, workdir: Path) -> Iterator[Backend]:
    """Yield a fresh embedded backend of the named kind, closed afterwards.

    Raises:
        ConfigurationError: the name is unknown or its client library is not installed.
    """
    if name == "memory":
        from tiering.adapters.memory import InMemoryBackend

        yield InMemoryBackend(dim, metric)
        return
    if name == "qdrant":
        try:
            from qdrant_client import QdrantClient

            from tiering.adapters.qdrant import QdrantBackend
        except ImportError as exc:
            raise ConfigurationError(
                "The qdrant backend needs qdrant-client: pip install 'vector-tiering[qdrant]'."
            ) from exc
        backend: Backend = QdrantBackend(QdrantClient(":memory:"), "tiering_demo", dim, metric)
    elif name == "milvus":
        try:
            from tiering.adapters.milvus import MilvusBackend, connect_milvus
        except ImportError as exc:
            raise ConfigurationError(
                "The milvus backend needs pymilvus and milvus-lite: pip install 'vector-tiering[milvus]'."
            ) from exc
        client = connect_milvus(str(workdir / "milvus-demo.db"))
        backend = MilvusBackend(client, "tiering_demo", dim, metric, in_process=True)
    else:
        raise ConfigurationError(f"Unknown backend {name!r}. Use one of: {', '.join(BACKENDS)}.")
    try:
        yield backend
    finally:
        backend.close()


def zipf_stream(n_queries: int, length: int, s: float, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Return ``length`` query indices drawn with probability proportional to 1 / rank**s.

    Ranks are a seeded permutation of the queries, so popularity is not tied to file order.
    """
    ranks = np.arange(1, n_queries + 1, dtype=np.float64)
    weights = ranks**-s
    popularity = rng.permutation(n_queries)
    draws = rng.choice(n_queries, size=length, p=weights / weights.sum())
    return popularity[draws].astype(np.int64)


@dataclass(frozen=True)
class Measurement:
    """Recall and latency of one search mode over every query."""

    recall: float
    p50_ms: float
    p99_ms: float
    per_query_hits: list[set[int]]


def measure(store: TieredStore, data: Dataset, k: int, mode: ColdSearch, rounds: int) -> Measurement:
    """Search every query ``rounds`` times in ``mode`` without counting accesses."""
    latencies: list[float] = []
    found: list[list[int]] = []
    for round_number in range(rounds):
        for query in data.queries:
            started = time.perf_counter()
            hits = store.search(query, k, cold=mode, track=False)
            latencies.append(time.perf_counter() - started)
            if round_number == 0:
                found.append([int(hit.id) for hit in hits])  # type: ignore[union-attr]
    return Measurement(
        recall=recall_at_k(found, data.ground_truth, k),
        p50_ms=percentile_ms(latencies, 50),
        p99_ms=percentile_ms(latencies, 99),
        per_query_hits=[set(ids) for ids in found],
    )


def workload_recall(measurement: Measurement, data: Dataset, stream: npt.NDArray[np.int64], k: int) -> float:
    """Return recall@k weighted by how often each query appears in the stream."""
    counts = np.bincount(stream, minlength=len(data.queries))
    per_query = np.array(
        [
            len(measurement.per_query_hits[q] & set(data.ground_truth[q][:k].tolist())) / k
            for q in range(len(counts))
        ]
    )
    return float((per_query * counts).sum() / counts.sum())


def run_demo(settings: DemoSettings, progress: Progress | None = None) -> dict[str, Any]:
    """Run the demo and return its report as a JSON-ready dictionary.

    Raises:
        ValidationError, ConfigurationError: bad settings or input files.
    """
    if not 0.0 < settings.hot_fraction <= 1.0:
        raise ValidationError(f"Invalid hot fraction {settings.hot_fraction}: use a value in (0, 1].")
    if settings.searches < 1:
        raise ValidationError(f"Invalid search count {settings.searches}: use 1 or more.")
    if settings.zipf_s < 0:
        raise ValidationError(f"Invalid Zipf exponent {settings.zipf_s}: use 0 (uniform) or more.")
    report_progress = progress or (lambda phase, done, total: None)
    data = load_input(settings, progress)
    k = settings.k
    with tempfile.TemporaryDirectory(prefix="tiering-demo-") as scratch:
        workdir = Path(scratch)
        cold_dir = settings.cold_dir or workdir / "cold"
        clock = SimulatedClock()
        config = TieringConfig(
            half_life_s=settings.half_life_s,
            policy=PolicyConfig(
                budget=HotBudget(max_fraction=settings.hot_fraction),
                min_idle_s=settings.min_idle_s,
                cooldown_s=settings.min_idle_s,
            ),
        )
        dim = data.base.shape[1]
        with open_backend(settings.backend, dim, data.metric, workdir) as backend:
            store = TieredStore(backend, cold_dir, config=config, clock=clock, close_backend=False)
            try:
                return _run(store, data, settings, clock, k, report_progress)
            finally:
                store.close()


def _run(
    store: TieredStore,
    data: Dataset,
    settings: DemoSettings,
    clock: SimulatedClock,
    k: int,
    progress: Progress,
) -> dict[str, Any]:
    total = len(data.base)
    batch = 1000
    for start in range(0, total, batch):
        rows = range(start, min(total, start + batch))
        store.upsert(
            list(rows), data.base[start : start + batch], [{"row": row, "shard": row % 8} for row in rows]
        )
        progress("load", min(total, start + batch), total)

    all_hot = measure(store, data, k, ColdSearch.NEVER, settings.latency_rounds)
    progress("measure all hot", 1, 1)

    rng = np.random.default_rng(settings.seed)
    stream = zipf_stream(len(data.queries), settings.searches, settings.zipf_s, rng)
    timeline: list[dict[str, float]] = []

    def run_pass() -> None:
        result = store.tier()
        counts = store.count()
        timeline.append(
            {
                "simulated_s": clock.now_s - start_s,
                "hot_count": counts.hot,
                "cold_count": counts.cold,
                "demoted": result.demoted,
                "promoted": result.promoted,
            }
        )

    start_s = clock.now_s
    for n, query_index in enumerate(stream, start=1):
        store.search(data.queries[query_index], k)
        clock.advance(1.0)
        if n % settings.pass_every == 0:
            run_pass()
        if n % 50 == 0 or n == len(stream):
            progress("replay query stream", n, len(stream))

    for _ in range(MAX_EXTRA_PASSES):
        if store.count().hot_fraction <= settings.hot_fraction:
            break
        clock.advance(settings.min_idle_s)
        run_pass()

    tiered = measure(store, data, k, ColdSearch.ALWAYS, settings.latency_rounds)
    progress("measure tiered", 1, 1)
    hot_only = measure(store, data, k, ColdSearch.NEVER, settings.latency_rounds)
    progress("measure hot only", 1, 1)

    counts = store.count()
    dim = data.base.shape[1]
    return {
        "dataset": data.name,
        "backend": settings.backend,
        "metric": data.metric.value,
        "vectors": total,
        "dim": dim,
        "k": k,
        "searches": settings.searches,
        "zipf_s": settings.zipf_s,
        "seed": settings.seed,
        "simulated_seconds": float(settings.searches),
        "hot_count": counts.hot,
        "cold_count": counts.cold,
        "hot_fraction": counts.hot_fraction,
        "hot_bytes": counts.hot * dim * 4,
        "cold_segment_bytes": sum(entry.size_bytes for entry in store.cold.manifest.segments),
        "cold_index_bytes": store.cold.index_bytes(),
        "tiering": {
            "passes": len(timeline),
            "demoted": sum(int(point["demoted"]) for point in timeline),
            "promoted": sum(int(point["promoted"]) for point in timeline),
            "timeline": timeline,
        },
        "recall_at_10" if k == 10 else f"recall_at_{k}": {
            "all_hot": all_hot.recall,
            "tiered": tiered.recall,
            "hot_only": hot_only.recall,
            "hot_only_workload": workload_recall(hot_only, data, stream, k),
        },
        "latency_ms": {
            "all_hot": {"p50": all_hot.p50_ms, "p99": all_hot.p99_ms},
            "tiered": {"p50": tiered.p50_ms, "p99": tiered.p99_ms},
            "hot_only": {"p50": hot_only.p50_ms, "p99": hot_only.p99_ms},
        },
        "cost_usd_per_month": _cost(store, counts.hot, counts.cold, dim, settings),
    }


def _cost(store: TieredStore, hot: int, cold: int, dim: int, settings: DemoSettings) -> dict[str, Any]:
    # Price the measured hot fraction at the modeled scale; the cold index grows with it.
    index_bytes_per_row = store.cold.index_bytes() / max(cold, 1)
    total = hot + cold
    modeled_hot = round(settings.modeled_vectors * hot / total)
    modeled = estimate_tiering_cost(
        total_vectors=settings.modeled_vectors,
        hot_vectors=modeled_hot,
        dim=dim,
        queries_per_month=settings.queries_per_month,
        cold_index_bytes=int(index_bytes_per_row * (settings.modeled_vectors - modeled_hot)),
        price_model=settings.price_model,
    )
    at_demo_scale = estimate_tiering_cost(
        total_vectors=total,
        hot_vectors=hot,
        dim=dim,
        queries_per_month=settings.queries_per_month,
        cold_index_bytes=store.cold.index_bytes(),
        price_model=settings.price_model,
    )
    return {
        "before": modeled.before_usd_per_month,
        "after": modeled.after_usd_per_month,
        "saving": modeled.saving_usd_per_month,
        "modeled_vectors": settings.modeled_vectors,
        "queries_per_month": settings.queries_per_month,
        "price_model": modeled.price_model,
        "prices_dated": modeled.prices_dated,
        "items_before": modeled.items_before,
        "items_after": modeled.items_after,
        "at_demo_scale": {
            "vectors": total,
            "before": at_demo_scale.before_usd_per_month,
            "after": at_demo_scale.after_usd_per_month,
        },
    }
