"""An in-process backend: exact search over numpy arrays.

It is the reference implementation of :class:`tiering.backend.Backend` for tests,
benchmarks and small deployments. Data lives in process memory and is lost on exit.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tiering.filters import Filter, matches
from tiering.records import Hit, Id, Metric, Record, Vector, normalize_rows
from tiering.scoring import top_k


class InMemoryBackend:
    """Exact (brute force) vector search in numpy. Thread-safe."""

    in_process = True
    """Searches run in this process; see ``TieringConfig.parallel_tiers``."""

    def __init__(self, dim: int, metric: Metric | str = Metric.COSINE, capacity: int = 1024):
        self._dim = dim
        self._metric = Metric.parse(metric)
        self._vectors = np.zeros((capacity, dim), dtype=np.float32)
        self._ids: list[Id | None] = [None] * capacity
        self._payloads: list[Mapping[str, Any]] = [{}] * capacity
        self._versions = np.zeros(capacity, dtype=np.int64)
        self._live = np.zeros(capacity, dtype=bool)
        self._slots: dict[Id, int] = {}
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self._lock = threading.RLock()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> Metric:
        return self._metric

    def upsert(self, records: Sequence[Record]) -> None:
        with self._lock:
            for record in records:
                slot = self._slots.get(record.id)
                if slot is None:
                    slot = self._allocate()
                    self._slots[record.id] = slot
                vector = record.vector.reshape(1, -1).astype(np.float32)
                if self._metric is Metric.COSINE:
                    vector = normalize_rows(vector)
                self._vectors[slot] = vector[0]
                self._ids[slot] = record.id
                self._payloads[slot] = dict(record.payload)
                self._versions[slot] = record.version
                self._live[slot] = True

    def _allocate(self) -> int:
        if not self._free:
            old = len(self._ids)
            new = old * 2
            self._vectors = np.concatenate([self._vectors, np.zeros_like(self._vectors)])
            self._ids.extend([None] * old)
            self._payloads.extend([{}] * old)
            self._versions = np.concatenate([self._versions, np.zeros(old, dtype=np.int64)])
            self._live = np.concatenate([self._live, np.zeros(old, dtype=bool)])
            self._free.extend(range(new - 1, old - 1, -1))
        return self._free.pop()

    def search(self, queries: Vector, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        with self._lock:
            allowed = self._live.copy()
            if filter is not None:
                for slot in np.flatnonzero(allowed):
                    allowed[slot] = matches(filter, self._payloads[slot])
            candidates = np.flatnonzero(allowed)
            vectors = self._vectors[candidates]
            if self._metric is Metric.COSINE:
                queries = normalize_rows(queries)
            best_rows, best_scores = top_k(queries, vectors, k, self._metric)
            results = []
            for rows, scores in zip(best_rows, best_scores, strict=True):
                hits = []
                for row, score in zip(rows, scores, strict=True):
                    slot = candidates[row].item()
                    hits.append(
                        Hit(
                            id=self._ids[slot],
                            score=float(score),
                            tier="hot",
                            version=int(self._versions[slot]),
                            payload=self._payloads[slot],
                        )
                    )
                results.append(hits)
            return results

    def fetch(self, ids: Sequence[Id]) -> list[Record]:
        with self._lock:
            found = []
            for record_id in ids:
                slot = self._slots.get(record_id)
                if slot is not None:
                    found.append(
                        Record(
                            id=record_id,
                            vector=self._vectors[slot].copy(),
                            payload=self._payloads[slot],
                            version=int(self._versions[slot]),
                        )
                    )
            return found

    def delete(self, ids: Sequence[Id]) -> None:
        with self._lock:
            for record_id in ids:
                slot = self._slots.pop(record_id, None)
                if slot is not None:
                    self._live[slot] = False
                    self._ids[slot] = None
                    self._payloads[slot] = {}
                    self._free.append(slot)

    def count(self) -> int:
        with self._lock:
            return len(self._slots)

    def iter_ids(self, batch_size: int = 1000) -> Iterator[list[Id]]:
        with self._lock:
            ids = list(self._slots)
        for start in range(0, len(ids), batch_size):
            yield ids[start : start + batch_size]

    def close(self) -> None:
        """Nothing to release; the data stays in memory until the object is dropped."""
