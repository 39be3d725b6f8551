"""Per-shard indexes, partitions, routing and merging against exact search."""

from __future__ import annotations

import numpy as np
import pytest

from tiering.datasets import exact_ground_truth, synthetic_clustered
from tiering.metrics import recall_at_k
from tiering.records import Metric, normalize_rows
from tiering.sizing.shards import (
    FaissShard,
    ShardedIndex,
    partition_by_id,
    partition_by_kmeans,
)
from tiering.sizing.specs import IndexSpec, RoutingSpec


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base, queries = synthetic_clustered(3000, 16, clusters=8, n_queries=30, seed=3)
    truth = exact_ground_truth(base, queries, 10, Metric.L2)
    return base, queries, truth


def _sharded(
    base: np.ndarray, ids: np.ndarray, shards: int, routing: RoutingSpec, spec: IndexSpec,
    metric: Metric = Metric.L2, cold: np.ndarray | None = None,
) -> ShardedIndex:
    if routing.kind == "all":
        partition = partition_by_id(ids, shards)
    else:
        partition = partition_by_kmeans(base[ids], ids, shards, seed=0)
    indexes = [FaissShard(spec, base[part], part, metric) for part in partition.shard_ids]
    cold_shard = None if cold is None else FaissShard(IndexSpec("flat"), base[cold], cold, metric)
    return ShardedIndex(indexes, routing, partition.centroids, cold_shard)


def _search_all(sharded: ShardedIndex, queries: np.ndarray, k: int = 10) -> list[list[int]]:
    return [sharded.search_one(queries[i : i + 1], k).ids.tolist() for i in range(len(queries))]


def test_flat_fan_out_is_exact(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    base, queries, truth = data
    ids = np.arange(len(base), dtype=np.int64)
    sharded = _sharded(base, ids, 4, RoutingSpec("all"), IndexSpec("flat"))
    found = _search_all(sharded, queries)
    assert recall_at_k(found, truth, 10) == 1.0
    assert sharded.search_one(queries[:1], 10).shards_searched == 4


def test_nearest_all_probes_is_exact(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    base, queries, truth = data
    ids = np.arange(len(base), dtype=np.int64)
    sharded = _sharded(base, ids, 4, RoutingSpec("nearest", 4), IndexSpec("flat"))
    assert recall_at_k(_search_all(sharded, queries), truth, 10) == 1.0


def test_nearest_one_probe_visits_one(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    base, queries, truth = data
    ids = np.arange(len(base), dtype=np.int64)
    sharded = _sharded(base, ids, 4, RoutingSpec("nearest", 1), IndexSpec("flat"))
    result = sharded.search_one(queries[:1], 10)
    assert result.shards_searched == 1
    assert result.distance_count < len(base)
    assert 0 < recall_at_k(_search_all(sharded, queries), truth, 10) <= 1.0


def test_hot_plus_cold_is_exact(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    base, queries, truth = data
    hot = np.arange(0, len(base), 3, dtype=np.int64)
    cold = np.setdiff1d(np.arange(len(base), dtype=np.int64), hot)
    sharded = _sharded(base, hot, 2, RoutingSpec("all"), IndexSpec("flat"), cold=cold)
    found = _search_all(sharded, queries)
    assert recall_at_k(found, truth, 10) == 1.0
    cold_hits = sum(sharded.search_one(queries[i : i + 1], 10).cold_hits for i in range(5))
    assert cold_hits > 0
    result = sharded.search_one(queries[:1], 10)
    assert result.hot_distance_count == len(hot)
    assert result.distance_count == len(base)


def test_hnsw_counts_distances(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    base, queries, _truth = data
    ids = np.arange(len(base), dtype=np.int64)
    shard = FaissShard(IndexSpec("hnsw", m=8, ef_search=16), base, ids, Metric.L2)
    result = shard.search(queries[:1], 10)
    assert 0 < result.distance_count < len(base)
    assert shard.index_bytes > base.nbytes
    assert (result.scores <= 0).all()


def test_ivf_caps_small_nlist(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    base, _queries, _truth = data
    ids = np.arange(390, dtype=np.int64)
    shard = FaissShard(IndexSpec("ivf", nlist=256, nprobe=64), base[ids], ids, Metric.L2)
    assert shard.effective_spec == IndexSpec("ivf", nlist=10, nprobe=10)


def test_cosine_scores_are_similarities() -> None:
    rng = np.random.default_rng(0)
    base = normalize_rows(rng.normal(size=(200, 8)).astype(np.float32))
    ids = np.arange(200, dtype=np.int64) + 1000
    shard = FaissShard(IndexSpec("flat"), base, ids, Metric.COSINE)
    result = shard.search(base[5:6], 3)
    assert result.ids[0] == 1005
    assert result.scores[0] == pytest.approx(1.0, abs=1e-5)


def test_merge_ties_prefer_lower_id() -> None:
    vector = np.ones((1, 4), dtype=np.float32)
    base = np.repeat(vector, 4, axis=0)
    left = FaissShard(IndexSpec("flat"), base[:2], np.array([7, 3]), Metric.L2)
    right = FaissShard(IndexSpec("flat"), base[2:], np.array([5, 1]), Metric.L2)
    sharded = ShardedIndex([left, right], RoutingSpec("all"), None, None)
    assert sharded.search_one(vector, 3).ids.tolist() == [1, 3, 5]
