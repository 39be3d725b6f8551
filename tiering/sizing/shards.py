"""Per-shard FAISS indexes, shard partitioning, query routing and the merge of results.

A sharded hot tier splits the hot vectors into shards. With ``all`` routing the split
is by id (round robin, like hash sharding) and every query fans out to every shard.
With ``nearest:P`` routing the split is by k-means cluster and a query visits the P
shards whose centroids are nearest. The cold tier, when present, is one more index
searched by every query. Results merge by score (higher is better), ties to the lower id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import faiss
import numpy as np
import numpy.typing as npt

from tiering.records import Metric
from tiering.sizing.specs import IndexSpec, RoutingSpec

IVF_MIN_POINTS_PER_LIST = 39
"""FAISS warns when k-means gets fewer than 39 training points per centroid."""

_FAISS_GLOBALS: Any = faiss.cvar


class ShardResult(NamedTuple):
    """Hits of one index for one query: global ids and scores, best first."""

    ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    distance_count: int


class ShardIndex(Protocol):
    """One searchable shard: a FAISS index or a vector store collection."""

    @property
    def size(self) -> int:
        """Number of vectors in the shard."""
        ...

    @property
    def index_bytes(self) -> int:
        """Size of the index in bytes (serialized FAISS index, or an estimate)."""
        ...

    def search(self, query: npt.NDArray[np.float32], k: int) -> ShardResult:
        """Return the best ``k`` hits for one query of shape (1, dim)."""
        ...

    def close(self) -> None:
        """Release resources. Idempotent."""
        ...


def build_faiss_index(
    spec: IndexSpec, vectors: npt.NDArray[np.float32], metric: Metric
) -> faiss.Index:
    """Build and fill a FAISS index for ``vectors``; cosine vectors must be unit length.

    IVF lists are capped so that every list gets at least
    :data:`IVF_MIN_POINTS_PER_LIST` training points; the cap is visible in
    :attr:`FaissShard.effective_spec`.
    """
    dim = vectors.shape[1]
    faiss_metric = faiss.METRIC_L2 if metric is Metric.L2 else faiss.METRIC_INNER_PRODUCT
    index: faiss.Index
    if spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, spec.m, faiss_metric)
        index.hnsw.efConstruction = spec.ef_construction
        index.hnsw.efSearch = spec.ef_search
    elif spec.kind == "ivf":
        nlist = _effective_nlist(spec, len(vectors))
        quantizer = (
            faiss.IndexFlatL2(dim) if metric is Metric.L2 else faiss.IndexFlatIP(dim)
        )
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss_metric)
        index.cp.seed = 1234
        index.train(vectors)
        index.nprobe = min(spec.nprobe, nlist)
    else:
        index = faiss.IndexFlat(dim, faiss_metric)
    index.add(vectors)
    return index


def _effective_nlist(spec: IndexSpec, n: int) -> int:
    return max(1, min(spec.nlist, n // IVF_MIN_POINTS_PER_LIST))


class FaissShard:
    """A FAISS index over some base vectors that returns their global ids.

    Searches are thread-safe (FAISS releases the GIL and does not mutate on search),
    but the distance counts come from FAISS's global statistics and are only right
    when one thread searches at a time.
    """

    def __init__(
        self,
        spec: IndexSpec,
        vectors: npt.NDArray[np.float32],
        ids: npt.NDArray[np.int64],
        metric: Metric,
    ) -> None:
        started = time.perf_counter()
        self._index = build_faiss_index(spec, vectors, metric)
        self.build_s = time.perf_counter() - started
        self._ids = ids
        self._metric = metric
        self._spec = spec
        self._nlist = _effective_nlist(spec, len(ids))
        if spec.kind == "ivf":
            self.effective_spec = IndexSpec(
                "ivf", nlist=self._nlist, nprobe=min(spec.nprobe, self._nlist)
            )
        else:
            self.effective_spec = spec
        self._index_bytes = int(faiss.serialize_index(self._index).nbytes)

    @property
    def size(self) -> int:
        """Number of vectors in the shard."""
        return len(self._ids)

    @property
    def index_bytes(self) -> int:
        """Bytes of the serialized FAISS index."""
        return self._index_bytes

    def search(self, query: npt.NDArray[np.float32], k: int) -> ShardResult:
        """Return the best ``k`` hits in the project's score convention."""
        if self._spec.kind == "hnsw":
            _FAISS_GLOBALS.hnsw_stats.reset()
        elif self._spec.kind == "ivf":
            _FAISS_GLOBALS.indexIVF_stats.reset()
        distances, labels = self._index.search(query, min(k, self.size))

        found = labels[0] >= 0
        ids = self._ids[labels[0][found]]
        scores = distances[0][found]
        if self._metric is Metric.L2:
            scores = -scores
        return ShardResult(ids, scores.astype(np.float32), self._distance_count())

    def _distance_count(self) -> int:
        if self._spec.kind == "hnsw":
            return int(_FAISS_GLOBALS.hnsw_stats.ndis)
        if self._spec.kind == "ivf":
            return int(_FAISS_GLOBALS.indexIVF_stats.ndis) + self._nlist
        return self.size

    def close(self) -> None:
        """Drop the index."""
        self._index.reset()


@dataclass(frozen=True)
class Partition:
    """Global ids per shard and, for k-means partitions, the shard centroids."""

    shard_ids: list[npt.NDArray[np.int64]]
    centroids: npt.NDArray[np.float32] | None


def partition_by_id(ids: npt.NDArray[np.int64], shards: int) -> Partition:
    """Split ``ids`` round robin into ``shards`` parts, as hash sharding does."""
    return Partition([ids[i::shards] for i in range(shards)], None)


def partition_by_kmeans(
    vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], shards: int, *, seed: int = 0
) -> Partition:
    """Split ``ids`` by the nearest of ``shards`` k-means centroids (L2 on the vectors).

    A shard can end up empty when k-means leaves a centroid without points.
    """
    if shards == 1:
        return Partition([ids], vectors.mean(axis=0, keepdims=True).astype(np.float32))
    kmeans = faiss.Kmeans(
        vectors.shape[1], shards, niter=20, seed=seed, max_points_per_centroid=512
    )
    kmeans.train(vectors)
    _distances, labels = kmeans.index.search(vectors, 1)
    labels = labels.ravel()
    return Partition(
        [ids[labels == shard] for shard in range(shards)],
        np.asarray(kmeans.centroids, dtype=np.float32),
    )


class QueryResult(NamedTuple):
    """Merged hits of one query with the work it took."""

    ids: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    shards_searched: int
    distance_count: int
    hot_distance_count: int
    cold_hits: int


class ShardedIndex:
    """The hot shards, the router and the optional cold-tier index of one configuration."""

    def __init__(
        self,
        shards: Sequence[ShardIndex | None],
        routing: RoutingSpec,
        centroids: npt.NDArray[np.float32] | None,
        cold: ShardIndex | None,
    ) -> None:
        self.shards = list(shards)
        self.routing = routing
        self.centroids = centroids
        self.cold = cold

    def route(self, query: npt.NDArray[np.float32]) -> list[int]:
        """Return the shard numbers a query visits."""
        if self.routing.kind == "all" or self.centroids is None:
            return list(range(len(self.shards)))
        probes = min(self.routing.probes, len(self.shards))
        distances = ((self.centroids - query) ** 2).sum(axis=1)
        return [int(s) for s in np.argsort(distances, kind="stable")[:probes]]

    def search_one(self, query: npt.NDArray[np.float32], k: int) -> QueryResult:
        """Search the routed shards and the cold tier one after the other, then merge."""
        parts: list[ShardResult] = []
        distance_count = len(self.shards) if self.routing.kind == "nearest" else 0
        visited = 0
        for shard_number in self.route(query):
            shard = self.shards[shard_number]
            if shard is None:
                continue
            parts.append(shard.search(query, k))
            visited += 1
        hot_parts = len(parts)
        distance_count += sum(part.distance_count for part in parts)
        hot_distance_count = distance_count
        if self.cold is not None:
            parts.append(self.cold.search(query, k))
            distance_count += parts[-1].distance_count

        ids = np.concatenate([part.ids for part in parts]) if parts else np.zeros(0, np.int64)
        scores = (
            np.concatenate([part.scores for part in parts]) if parts else np.zeros(0, np.float32)
        )
        order = np.lexsort((ids, -scores))[:k]
        cold_hits = 0
        if self.cold is not None and hot_parts < len(parts):
            cold_ids = set(parts[-1].ids.tolist())
            cold_hits = sum(1 for i in ids[order].tolist() if i in cold_ids)
        return QueryResult(
            ids[order], scores[order], visited, distance_count, hot_distance_count, cold_hits
        )

    def close(self) -> None:
        """Close every shard and the cold index."""
        for shard in self.shards:
            if shard is not None:
                shard.close()
        if self.cold is not None:
            self.cold.close()
