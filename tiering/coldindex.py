"""The FAISS index over cold rows, keyed by global row id.

The index is exact (``IndexFlat``) up to ``exact_max_rows`` rows and IVF (``IndexIVFFlat``,
up to 4 * sqrt(n) lists, ``nprobe`` lists searched) above it, always wrapped in
``IndexIDMap2`` so row ids stay stable and rows can be removed. Cosine uses inner
product on unit vectors; L2 scores are negated squared distances, as everywhere.

A saved index is a derived file: it is stored with its SHA-256 and the manifest
version it reflects, and is rebuilt from the segments when missing, corrupt or stale.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from tiering.errors import CorruptDataError
from tiering.records import Metric, Vector, normalize_rows
from tiering.segment import sha256_hex

INDEX_KEY = "index/cold.faiss"
SINGLE_THREAD_MAX_QUERIES = 16
"""Batches up to this size search on one OpenMP thread. For a handful of queries, waking
FAISS's thread pool costs more than it saves: about 6 ms versus 0.4 ms per SIFT query
on 8,000 rows, measured with 2 cores and faiss-cpu 1.15."""
INDEX_META_KEY = "index/cold.json"


@dataclass(frozen=True)
class IndexSettings:
    """Build settings of the cold index."""

    exact_max_rows: int = 100_000
    nprobe: int = 32


@contextmanager
def _threads_for(n_queries: int) -> Iterator[None]:
    if n_queries > SINGLE_THREAD_MAX_QUERIES:
        yield
        return
    # omp_set_num_threads is process-wide; a concurrent search may briefly run with
    # either setting, which changes only its speed.
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


class ColdIndex:
    """A FAISS index from row id to vector. Thread-safe."""

    def __init__(self, dim: int, metric: Metric, settings: IndexSettings | None = None):
        self.dim = dim
        self.metric = metric
        self.settings = settings or IndexSettings()
        self._lock = threading.RLock()
        self._index = self._flat()

    @property
    def kind(self) -> str:
        """``flat`` or ``ivf``."""
        return "ivf" if isinstance(faiss.downcast_index(self._index.index), faiss.IndexIVF) else "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def _faiss_metric(self) -> int:
        return faiss.METRIC_L2 if self.metric is Metric.L2 else faiss.METRIC_INNER_PRODUCT

    def _flat(self) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlat(self.dim, self._faiss_metric()))

    def _prepare(self, vectors: Vector) -> Vector:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        return normalize_rows(vectors) if self.metric is Metric.COSINE else vectors

    def rebuild(self, row_ids: npt.NDArray[np.int64], vectors: Vector) -> None:
        """Replace the index with one over ``vectors``, choosing flat or IVF by size."""
        vectors = self._prepare(vectors)
        if len(row_ids) <= self.settings.exact_max_rows:
            index = self._flat()
        else:
            # About 4 * sqrt(n) lists, but at least 39 training points per list (FAISS's
            # own lower bound for k-means) and at most 65,536.
            lists = max(1, min(65536, int(4 * math.sqrt(len(row_ids))), len(row_ids) // 39))
            quantizer = faiss.IndexFlat(self.dim, self._faiss_metric())
            ivf = faiss.IndexIVFFlat(quantizer, self.dim, lists, self._faiss_metric())
            sample = vectors[np.random.default_rng(0).permutation(len(vectors))[: lists * 64]]
            ivf.train(sample)
            ivf.nprobe = self.settings.nprobe
            index = faiss.IndexIDMap2(ivf)
        if len(row_ids):
            index.add_with_ids(vectors, np.asarray(row_ids, dtype=np.int64))
        with self._lock:
            self._index = index

    def needs_rebuild(self, extra_rows: int) -> bool:
        """Return whether adding ``extra_rows`` would take a flat index past its limit."""
        return self.kind == "flat" and len(self) + extra_rows > self.settings.exact_max_rows

    def add(self, row_ids: Iterable[int], vectors: Vector) -> None:
        """Add rows. Row ids must not be in the index already."""
        ids = np.fromiter(row_ids, dtype=np.int64)
        if len(ids):
            with self._lock:
                self._index.add_with_ids(self._prepare(vectors), ids)

    def remove(self, row_ids: Iterable[int]) -> None:
        """Remove rows; ids not in the index are ignored."""
        ids = np.fromiter(row_ids, dtype=np.int64)
        if len(ids):
            with self._lock:
                self._index.remove_ids(faiss.IDSelectorBatch(ids))

    def search(
        self, queries: Vector, k: int, allowed: npt.NDArray[np.int64] | None = None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return (row ids, scores) of shape (n, k'); missing neighbours have row id -1.

        ``allowed`` restricts the search to those row ids (for payload filters).
        """
        queries = self._prepare(queries)
        with self._lock:
            take = min(k, len(self))
            if take == 0 or (allowed is not None and len(allowed) == 0):
                empty = np.full((len(queries), 0), -1, dtype=np.int64)
                return empty, np.zeros((len(queries), 0), dtype=np.float32)
            params = self._search_parameters(allowed)
            with _threads_for(len(queries)):
                distances, ids = self._index.search(queries, take, params=params)
        scores = -distances if self.metric is Metric.L2 else distances
        return ids.astype(np.int64), scores.astype(np.float32)

    def _search_parameters(self, allowed: npt.NDArray[np.int64] | None) -> Any:
        params: Any = faiss.SearchParametersIVF() if self.kind == "ivf" else faiss.SearchParameters()
        if self.kind == "ivf":
            params.nprobe = self.settings.nprobe
        if allowed is not None:
            # The selector must outlive the search, so the parameters keep a reference.
            params.sel = faiss.IDSelectorBatch(allowed.astype(np.int64))
            params.selector_reference = params.sel
        return params

    def memory_bytes(self) -> int:
        """Return the size of the serialised index, an estimate of its memory use."""
        with self._lock:
            return int(faiss.serialize_index(self._index).size)

    def to_bytes(self, manifest_version: int) -> tuple[bytes, bytes]:
        """Return (index bytes, metadata JSON bytes) for saving beside the segments."""
        with self._lock:
            data = faiss.serialize_index(self._index).tobytes()
        meta = {
            "manifest_version": manifest_version,
            "sha256": sha256_hex(data),
            "rows": len(self),
            "kind": self.kind,
            "dim": self.dim,
            "metric": self.metric.value,
        }
        return data, json.dumps(meta).encode()

    def load_bytes(self, data: bytes, meta_bytes: bytes) -> int:
        """Replace the index with a saved one; return the manifest version it reflects.

        Raises:
            CorruptDataError: the saved index is corrupt or truncated.
        """
        try:
            meta = json.loads(meta_bytes)
            manifest_version = int(meta["manifest_version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"Index metadata {INDEX_META_KEY!r} is invalid: {exc}") from exc
        if meta.get("sha256") != sha256_hex(data):
            raise CorruptDataError(f"Saved index {INDEX_KEY!r} fails its SHA-256 check.")
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise CorruptDataError(f"Saved index {INDEX_KEY!r} cannot be read: {exc}") from exc
        if not isinstance(index, faiss.IndexIDMap2) or index.d != self.dim:
            raise CorruptDataError(
                f"Saved index {INDEX_KEY!r} is not an IndexIDMap2 of dimension {self.dim}."
            )
        with self._lock:
            self._index = index
        return manifest_version

    def row_ids(self) -> npt.NDArray[np.int64]:
        """Return the row ids in the index."""
        with self._lock:
            return faiss.vector_to_array(self._index.id_map).astype(np.int64)
