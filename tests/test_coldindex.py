"""The FAISS cold index: exact and IVF modes, removal, filters, saved copies."""

from __future__ import annotations

import numpy as np
import pytest

from tiering.coldindex import ColdIndex, IndexSettings
from tiering.datasets import synthetic_clustered
from tiering.errors import CorruptDataError
from tiering.records import Metric
from tiering.scoring import top_k


def vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, dim), dtype=np.float32)


@pytest.mark.parametrize("metric", [Metric.L2, Metric.DOT])
def test_flat_matches_exact_search(metric):
    base = vectors(500)
    queries = vectors(20, seed=1)
    index = ColdIndex(16, metric)
    index.add(range(1000, 1500), base)

    row_ids, scores = index.search(queries, 10)

    expected_rows, expected_scores = top_k(queries, base, 10, metric)
    assert np.array_equal(row_ids, expected_rows + 1000)
    assert np.allclose(scores, expected_scores, atol=1e-3)


def test_ivf_above_exact_limit_keeps_recall():
    base, queries = synthetic_clustered(3000, 16, clusters=32, n_queries=50, seed=2)
    index = ColdIndex(16, Metric.L2, IndexSettings(exact_max_rows=1000, nprobe=16))
    index.rebuild(np.arange(3000), base)

    row_ids, _ = index.search(queries, 10)

    expected, _ = top_k(queries, base, 10, Metric.L2)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(row_ids, expected, strict=True)])
    assert index.kind == "ivf"
    assert recall >= 0.9


def test_remove_and_filter():
    base = vectors(100)
    index = ColdIndex(16, Metric.L2)
    index.add(range(100), base)
    index.remove([0, 1, 2])

    rows, _ = index.search(base[:1], 5)
    allowed_rows, _ = index.search(base[:1], 5, allowed=np.array([50, 60], dtype=np.int64))

    assert 0 not in rows[0]
    assert len(index) == 97
    assert set(allowed_rows[0]) - {-1} == {50, 60}


def test_cosine_normalises():
    index = ColdIndex(16, Metric.COSINE)
    base = vectors(10)
    index.add(range(10), base * 7.0)

    _, scores = index.search(base[:1], 1)

    assert scores[0][0] == pytest.approx(1.0, abs=1e-5)


def test_saved_copy_roundtrip_and_checks():
    index = ColdIndex(16, Metric.L2)
    index.add(range(10), vectors(10))
    data, meta = index.to_bytes(manifest_version=7)

    restored = ColdIndex(16, Metric.L2)
    assert restored.load_bytes(data, meta) == 7
    assert sorted(restored.row_ids().tolist()) == list(range(10))

    with pytest.raises(CorruptDataError, match="SHA-256"):
        ColdIndex(16, Metric.L2).load_bytes(data[:-5], meta)
    with pytest.raises(CorruptDataError, match="invalid"):
        ColdIndex(16, Metric.L2).load_bytes(data, b"[]")
    with pytest.raises(CorruptDataError, match="dimension 8"):
        ColdIndex(8, Metric.L2).load_bytes(data, meta)


def test_empty_index_search():
    rows, scores = ColdIndex(4, Metric.L2).search(vectors(3, dim=4), 5)

    assert rows.shape == (3, 0)
    assert scores.shape == (3, 0)
