"""Shards kept in a real vector store instead of a FAISS index: Qdrant or Milvus Lite.

Qdrant runs in qdrant-client's local mode (in process, exact search in numpy) through
:class:`tiering.adapters.qdrant.QdrantBackend`. Milvus runs as Milvus Lite (an embedded
server on 127.0.0.1) through :mod:`tiering.adapters.milvus` when that adapter exists,
otherwise through pymilvus' ``MilvusClient`` directly. Their index sizes cannot be
read back, so :attr:`index_bytes` reports the vendor memory rule (raw float32 bytes x
1.5), an estimate.
"""

from __future__ import annotations

import importlib
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tiering.errors import BackendError, ConfigurationError
from tiering.records import Metric, Record
from tiering.sizing.shards import ShardResult

BACKENDS = ("faiss", "qdrant", "milvus")
MEMORY_RULE_FACTOR = 1.5
_MILVUS_METRICS = {Metric.COSINE: "COSINE", Metric.DOT: "IP", Metric.L2: "L2"}


class BackendShard:
    """One shard stored in a collection of a real vector store.

    ``backend`` is any object with the :class:`tiering.backend.Backend` methods
    ``upsert``, ``search`` and ``close``.
    """

    def __init__(
        self, backend: Any, vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]
    ) -> None:
        started = time.perf_counter()
        records = [Record(int(i), v) for i, v in zip(ids, vectors, strict=True)]
        for start in range(0, len(records), 2000):
            backend.upsert(records[start : start + 2000])
        self.build_s = time.perf_counter() - started
        self._backend = backend
        self._size = len(ids)
        self._index_bytes = math.ceil(vectors.nbytes * MEMORY_RULE_FACTOR)

    @property
    def size(self) -> int:
        """Number of vectors in the shard."""
        return self._size

    @property
    def index_bytes(self) -> int:
        """Estimated memory: raw float32 bytes x 1.5 (Qdrant's sizing rule)."""
        return self._index_bytes

    def search(self, query: npt.NDArray[np.float32], k: int) -> ShardResult:
        """Return the best ``k`` hits; the distance count is the shard size (exact search)."""
        hits = self._backend.search(query, k)[0]
        ids = np.asarray([int(hit.id) for hit in hits], dtype=np.int64)
        scores = np.asarray([hit.score for hit in hits], dtype=np.float32)
        return ShardResult(ids, scores, self._size)

    def close(self) -> None:
        """Close the backend's client."""
        self._backend.close()


def open_backend(kind: str, *, name: str, dim: int, metric: Metric, workdir: Path) -> Any:
    """Open an empty collection ``name`` in a local Qdrant or Milvus Lite.

    Raises:
        ConfigurationError: unknown kind, or the client library is not installed.
    """
    if kind == "qdrant":
        try:
            from qdrant_client import QdrantClient

            from tiering.adapters.qdrant import QdrantBackend
        except ImportError as exc:
            raise ConfigurationError(
                "--backend qdrant needs qdrant-client: pip install 'vector-tiering[qdrant]'."
            ) from exc
        return QdrantBackend(QdrantClient(":memory:"), name, dim, metric)
    if kind == "milvus":
        return _open_milvus(name=name, dim=dim, metric=metric, workdir=workdir)
    raise ConfigurationError(f"Unknown backend {kind!r}. Use one of: {', '.join(BACKENDS)}.")


def _open_milvus(*, name: str, dim: int, metric: Metric, workdir: Path) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise ConfigurationError(
            "--backend milvus needs pymilvus and milvus-lite: "
            "pip install 'vector-tiering[milvus]'."
        ) from exc
    client = MilvusClient(str(workdir / f"{name}.db"))
    try:
        adapter = importlib.import_module("tiering.adapters.milvus")
    except ImportError:
        return _RawMilvusCollection(client, name, dim, metric)
    backend_class = getattr(adapter, "MilvusBackend", None)
    if backend_class is None:
        return _RawMilvusCollection(client, name, dim, metric)
    return backend_class(client, name, dim, metric)


class _RawMilvusCollection:
    """The few Backend methods the benchmark needs, on pymilvus' MilvusClient."""

    def __init__(self, client: Any, name: str, dim: int, metric: Metric) -> None:
        self._client = client
        self._name = name
        self._metric = metric
        try:
            client.create_collection(
                name, dimension=dim, metric_type=_MILVUS_METRICS[metric], auto_id=False
            )
        except Exception as exc:
            raise BackendError(f"Milvus Lite could not create collection {name!r}: {exc}") from exc

    def upsert(self, records: list[Record]) -> None:
        rows = [{"id": int(r.id), "vector": r.vector.tolist()} for r in records]
        try:
            self._client.insert(self._name, rows)
        except Exception as exc:
            raise BackendError(f"Milvus Lite insert into {self._name!r} failed: {exc}") from exc

    def search(self, queries: npt.NDArray[np.float32], k: int) -> list[list[Any]]:
        try:
            answers = self._client.search(self._name, data=queries.tolist(), limit=k)
        except Exception as exc:
            raise BackendError(f"Milvus Lite search in {self._name!r} failed: {exc}") from exc
        sign = -1.0 if self._metric is Metric.L2 else 1.0
        return [
            [_RawHit(int(hit["id"]), sign * float(hit["distance"])) for hit in row]
            for row in answers
        ]

    def close(self) -> None:
        self._client.close()


class _RawHit:
    __slots__ = ("id", "score")

    def __init__(self, hit_id: int, score: float) -> None:
        self.id = hit_id
        self.score = score
