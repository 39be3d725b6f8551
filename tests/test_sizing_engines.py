"""Shards in real vector stores (Qdrant local mode, Milvus Lite) agree with exact FAISS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tiering.records import Metric, normalize_rows
from tiering.sizing.engines import BackendShard, open_backend
from tiering.sizing.shards import FaissShard
from tiering.sizing.specs import IndexSpec


def _data(metric: Metric) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(300, 8)).astype(np.float32)
    queries = rng.normal(size=(5, 8)).astype(np.float32)
    if metric is Metric.COSINE:
        base, queries = normalize_rows(base), normalize_rows(queries)
    ids = np.arange(300, dtype=np.int64) * 3 + 11
    return base, queries, ids


def _congruent(kind: str, metric: Metric, workdir: Path) -> None:
    base, queries, ids = _data(metric)
    exact = FaissShard(IndexSpec("flat"), base, ids, metric)
    backend = open_backend(kind, name=f"c_{metric.value}", dim=8, metric=metric, workdir=workdir)
    shard = BackendShard(backend, base, ids)
    try:
        assert shard.size == 300
        assert shard.index_bytes == int(base.nbytes * 1.5)
        for row in range(len(queries)):
            expected = exact.search(queries[row : row + 1], 5)
            found = shard.search(queries[row : row + 1], 5)
            assert found.ids.tolist() == expected.ids.tolist()
            assert np.allclose(found.scores, expected.scores, atol=1e-3)
    finally:
        shard.close()


@pytest.mark.parametrize("metric", [Metric.L2, Metric.COSINE])
def test_qdrant_shard_matches_exact(metric: Metric, tmp_path: Path) -> None:
    _congruent("qdrant", metric, tmp_path)


@pytest.mark.slow
def test_milvus_shard_matches_exact(tmp_path: Path) -> None:
    _congruent("milvus", Metric.L2, tmp_path)
