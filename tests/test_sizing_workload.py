"""Inputs of a sizing run: data sources, ground truth, query stream and hot set."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tiering.datasets import hdf5_metric, synthetic_clustered
from tiering.errors import ValidationError
from tiering.records import Metric
from tiering.scoring import top_k
from tiering.sizing.workload import (
    SizingData,
    draw_workload,
    hot_count,
    hot_ids,
    load_sizing_data,
)


def _load(**kwargs: object) -> SizingData:
    options: dict[str, object] = {
        "dataset": None, "base": None, "queries": None, "groundtruth": None,
        "synthetic": None, "metric": None, "k": 10,
    }
    options.update(kwargs)
    return load_sizing_data(**options)  # type: ignore[arg-type]


def test_bundled_uses_shipped_truth() -> None:
    data = _load(dataset="siftsmall")
    assert data.metric is Metric.L2
    assert data.ground_truth.shape == (100, 100)


def test_bundled_large_k_recomputes_truth() -> None:
    data = _load(dataset="siftsmall", k=120)
    assert data.ground_truth.shape == (100, 120)
    shipped = _load(dataset="siftsmall")
    assert np.array_equal(data.ground_truth[:, :10], shipped.ground_truth[:, :10])


def test_synthetic_truth_is_exact() -> None:
    seen: list[int] = []
    data = _load(synthetic=(1500, 12), synthetic_queries=20, progress=seen.append)
    rows, _scores = top_k(data.queries, data.base, 10, Metric.L2)
    assert np.array_equal(data.ground_truth, rows)
    assert sum(seen) == 20


def test_npy_files_cosine_normalised(tmp_path: Path) -> None:
    base, queries = synthetic_clustered(500, 8, n_queries=5, seed=1)
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", queries)
    data = _load(base=tmp_path / "base.npy", queries=tmp_path / "queries.npy", metric=Metric.COSINE)
    norms = np.linalg.norm(data.base, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    assert data.ground_truth.shape == (5, 10)


def test_hdf5_file_carries_queries_and_metric(tmp_path: Path) -> None:
    base, queries = synthetic_clustered(300, 8, n_queries=4, seed=2)
    truth, _scores = top_k(queries, base, 20, Metric.L2)
    path = tmp_path / "data.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("train", data=base)
        handle.create_dataset("test", data=queries)
        handle.create_dataset("neighbors", data=truth.astype(np.int32))
        handle.attrs["distance"] = "euclidean"
    assert hdf5_metric(path) is Metric.L2
    data = _load(base=path)
    assert np.array_equal(data.ground_truth, truth)
    assert len(data.queries) == 4


def test_hdf5_angular_is_cosine(tmp_path: Path) -> None:
    path = tmp_path / "angular.hdf5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("train", data=np.eye(3, dtype=np.float32))
        handle.attrs["distance"] = "angular"
    assert hdf5_metric(path) is Metric.COSINE


def test_parquet_vectordbbench_files(tmp_path: Path) -> None:
    base, queries = synthetic_clustered(200, 6, n_queries=3, seed=4)
    pq.write_table(
        pa.table({"id": np.arange(200)[::-1], "emb": list(base[::-1])}), tmp_path / "train.parquet"
    )
    pq.write_table(pa.table({"id": np.arange(3), "emb": list(queries)}), tmp_path / "test.parquet")
    data = _load(base=tmp_path / "train.parquet", queries=tmp_path / "test.parquet")
    assert np.allclose(data.base, base)


def test_source_count_checked() -> None:
    with pytest.raises(ValidationError, match="exactly one data source"):
        _load()
    with pytest.raises(ValidationError, match="--dataset, --synthetic"):
        _load(dataset="siftsmall", synthetic=(10, 2))


def test_missing_queries_rejected(tmp_path: Path) -> None:
    np.save(tmp_path / "base.npy", np.ones((10, 4), np.float32))
    with pytest.raises(ValidationError, match="Missing --queries"):
        _load(base=tmp_path / "base.npy")


def test_short_truth_rejected(tmp_path: Path) -> None:
    base, queries = synthetic_clustered(100, 4, n_queries=3, seed=5)
    np.save(tmp_path / "b.npy", base)
    np.save(tmp_path / "q.npy", queries)
    np.save(tmp_path / "gt.npy", np.zeros((3, 5), np.int64))
    with pytest.raises(ValidationError, match="fewer than k=10"):
        _load(base=tmp_path / "b.npy", queries=tmp_path / "q.npy", groundtruth=tmp_path / "gt.npy")


def test_zipf_skews_stream() -> None:
    uniform = draw_workload(100, query_count=5000, k=10, zipf=0.0, concurrency=1, seed=1)
    skewed = draw_workload(100, query_count=5000, k=10, zipf=1.5, concurrency=1, seed=1)
    top_uniform = np.bincount(uniform.query_rows, minlength=100).max()
    top_skewed = np.bincount(skewed.query_rows, minlength=100).max()
    assert top_skewed > 5 * top_uniform
    again = draw_workload(100, query_count=5000, k=10, zipf=1.5, concurrency=1, seed=1)
    assert np.array_equal(skewed.query_rows, again.query_rows)


def test_workload_rejects_bad_values() -> None:
    with pytest.raises(ValidationError, match="Zipf"):
        draw_workload(10, query_count=5, k=1, zipf=-1, concurrency=1)
    with pytest.raises(ValidationError, match="concurrency 0"):
        draw_workload(10, query_count=5, k=1, zipf=1, concurrency=0)


def test_hot_ids_most_accessed() -> None:
    truth_rows = np.array([[5, 6], [5, 7], [5, 6]])
    assert hot_ids(10, truth_rows, 0.2).tolist() == [5, 6]
    assert hot_ids(10, truth_rows, 1.0).tolist() == list(range(10))
    assert hot_count(10, 0.01) == 1
    with pytest.raises(ValidationError, match="hot fraction"):
        hot_count(10, 0)
