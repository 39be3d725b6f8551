"""Inputs of a sizing run: base vectors, a query pool, exact ground truth, the query stream.

Sources: a bundled data set, users' files (every format of :mod:`tiering.datasets`),
or seeded synthetic clustered data. Ground truth is computed exactly, in batches,
when no file provides it. The query stream draws from the query pool with a Zipf
skew, and the same skew decides which base vectors are hot.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tiering import datasets
from tiering.errors import ValidationError
from tiering.records import Metric, normalize_rows

Progress = Callable[[int], None]


@dataclass(frozen=True)
class SizingData:
    """Base vectors, the query pool, exact ground truth (best first) and the metric.

    For ``cosine`` both ``base`` and ``queries`` are unit-normalised, so an inner
    product index ranks them by cosine similarity.
    """

    name: str
    base: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    ground_truth: npt.NDArray[np.int64]
    metric: Metric

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.base.shape[1])


@dataclass(frozen=True)
class Workload:
    """The query stream: rows of the query pool in order, ``k``, skew and concurrency."""

    query_rows: npt.NDArray[np.int64]
    k: int
    zipf: float
    concurrency: int


def load_sizing_data(
    *,
    dataset: str | None,
    base: Path | None,
    queries: Path | None,
    groundtruth: Path | None,
    synthetic: tuple[int, int] | None,
    metric: Metric | None,
    k: int,
    synthetic_queries: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
) -> SizingData:
    """Load or generate the data of a run and make sure ground truth covers ``k``.

    Exactly one source is allowed: ``dataset``, ``base`` (with ``queries`` unless it is
    an ann-benchmarks HDF5 file, which contains both) or ``synthetic`` ``(n, dim)``.
    ``metric`` overrides the source's metric; shipped ground truth is then recomputed.
    ``progress`` receives the number of queries whose ground truth was computed.

    Raises:
        ValidationError: no source or more than one, a missing file, mismatched
            dimensions, or ground truth that does not fit the data.
    """
    given = (("--dataset", dataset), ("--base", base), ("--synthetic", synthetic))
    sources = [option for option, value in given if value is not None]
    if len(sources) != 1:
        raise ValidationError(
            f"Give exactly one data source (--dataset, --base or --synthetic); got "
            f"{', '.join(sources) or 'none'}."
        )

    truth: npt.NDArray[np.int64] | None
    if dataset is not None:
        bundled = datasets.load_bundled(dataset)
        name, base_vectors, query_vectors = dataset, bundled.base, bundled.queries
        source_metric, truth = bundled.metric, bundled.ground_truth
    elif synthetic is not None:
        n, dim = synthetic
        base_vectors, query_vectors = datasets.synthetic_clustered(
            n, dim, n_queries=synthetic_queries, seed=seed
        )
        name, source_metric, truth = f"synthetic-{n}x{dim}", Metric.L2, None
    else:
        assert base is not None
        files = _load_files(base, queries, groundtruth)
        name, base_vectors, query_vectors = files.name, files.base, files.queries
        source_metric, truth = files.metric, files.truth

    chosen = metric or source_metric
    if chosen is not source_metric:
        truth = None
    if dataset is not None and truth is not None and truth.shape[1] < k:
        # The shipped ground truth is top-100; a larger k needs a fresh exact search.
        truth = None
    if base_vectors.shape[1] != query_vectors.shape[1]:
        raise ValidationError(
            f"Query dimension {query_vectors.shape[1]} differs from base dimension "
            f"{base_vectors.shape[1]}. Pass queries embedded with the same model."
        )
    if chosen is Metric.COSINE:
        base_vectors, query_vectors = normalize_rows(base_vectors), normalize_rows(query_vectors)
    if truth is not None:
        _check_truth(truth, len(base_vectors), len(query_vectors), k)
    else:
        truth = datasets.exact_ground_truth(
            base_vectors, query_vectors, k, chosen, progress=progress
        )
    return SizingData(name, base_vectors, query_vectors, truth, chosen)


@dataclass(frozen=True)
class _FileData:
    name: str
    base: npt.NDArray[np.float32]
    queries: npt.NDArray[np.float32]
    metric: Metric
    truth: npt.NDArray[np.int64] | None


def _load_files(base: Path, queries: Path | None, groundtruth: Path | None) -> _FileData:
    is_hdf5 = base.suffix.lower() in (".hdf5", ".h5")
    base_vectors = datasets.load_vectors(base, split="train")
    if queries is None:
        if not is_hdf5:
            raise ValidationError(
                f"Missing --queries for {base}. Pass a query file in the same format "
                "(only ann-benchmarks HDF5 files carry their own queries)."
            )
        query_vectors = datasets.load_vectors(base, split="test")
    else:
        query_vectors = datasets.load_vectors(queries, split="test")

    truth = None
    if groundtruth is not None:
        truth = datasets.load_ids(groundtruth)
    elif is_hdf5 and queries is None:
        truth = datasets.load_ids(base)
    metric = datasets.hdf5_metric(base) if is_hdf5 else Metric.L2
    return _FileData(base.stem, base_vectors, query_vectors, metric, truth)


def _check_truth(truth: npt.NDArray[np.int64], n_base: int, n_queries: int, k: int) -> None:
    if truth.ndim != 2 or truth.shape[0] != n_queries:
        raise ValidationError(
            f"Ground truth has shape {truth.shape} but there are {n_queries} queries. "
            "Pass the ground truth of these queries, or leave it out to compute it."
        )
    if truth.shape[1] < k:
        raise ValidationError(
            f"Ground truth has {truth.shape[1]} neighbours per query, fewer than k={k}. "
            "Lower --k or leave the ground truth out to compute it."
        )
    if truth[:, :k].min() < 0 or truth[:, :k].max() >= n_base:
        raise ValidationError(
            f"Ground truth ids fall outside [0, {n_base}) of the base vectors. "
            "Ids must be base row numbers."
        )


def draw_workload(
    n_pool: int, *, query_count: int, k: int, zipf: float, concurrency: int, seed: int = 0
) -> Workload:
    """Draw ``query_count`` rows of a pool of ``n_pool`` queries with Zipf skew ``zipf``.

    Query ``r`` of a seeded random ranking is drawn with probability proportional to
    ``1 / (r + 1) ** zipf``; ``zipf = 0`` draws uniformly.

    Raises:
        ValidationError: a count below 1 or a negative skew.
    """
    if query_count < 1 or k < 1 or concurrency < 1 or n_pool < 1:
        raise ValidationError(
            f"Invalid workload: query count {query_count}, k {k}, concurrency {concurrency} "
            f"and a pool of {n_pool} queries must all be at least 1."
        )
    if not math.isfinite(zipf) or zipf < 0:
        raise ValidationError(f"Invalid Zipf skew {zipf!r}: it must be a number >= 0.")
    rng = np.random.default_rng(seed)
    ranking = rng.permutation(n_pool)
    weights = 1.0 / np.arange(1, n_pool + 1, dtype=np.float64) ** zipf
    rows = ranking[rng.choice(n_pool, size=query_count, p=weights / weights.sum())]
    return Workload(rows.astype(np.int64), k, zipf, concurrency)


def hot_ids(
    n_base: int,
    truth_rows: npt.NDArray[np.int64],
    hot_fraction: float,
    *,
    seed: int = 0,
) -> npt.NDArray[np.int64]:
    """Return the sorted base ids kept hot: the most accessed ``hot_fraction`` of them.

    ``truth_rows`` are the exact top-k ids of every query in the stream, so an id's
    access count is how often the workload should return it. Ids with equal counts
    are ordered by a seeded shuffle. At least one id stays hot.
    """
    keep = hot_count(n_base, hot_fraction)
    if keep >= n_base:
        return np.arange(n_base, dtype=np.int64)
    counts = np.bincount(truth_rows.ravel(), minlength=n_base)
    tiebreak = np.random.default_rng(seed).permutation(n_base)
    order = np.lexsort((tiebreak, -counts))
    return np.sort(order[:keep]).astype(np.int64)


def hot_count(n_base: int, hot_fraction: float) -> int:
    """Return how many of ``n_base`` vectors a hot fraction keeps hot (at least 1).

    Raises:
        ValidationError: the fraction is outside (0, 1].
    """
    if not 0 < hot_fraction <= 1:
        raise ValidationError(f"Invalid hot fraction {hot_fraction!r}: it must be in (0, 1].")
    return max(1, math.ceil(n_base * hot_fraction - 1e-9))
