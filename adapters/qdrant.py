"""The Qdrant backend, through qdrant-client.

It works the same with a Qdrant server (``QdrantClient(url=...)``, REST or gRPC) and
with qdrant-client's local mode (``QdrantClient(":memory:")`` or ``path=...``), which
the tests use.

Id mapping: a non-negative int id is the Qdrant point id itself; a string id becomes
a deterministic uuid5 (see :mod:`tiering.adapters._idmap`). The original id and the
version live in the payload under ``tiering.records.ID_KEY`` and ``VERSION_KEY``.

Scores: Qdrant returns cosine similarity and dot product as they are, and the plain
(not squared) Euclidean distance, which this adapter turns into the negated squared
distance of the project's score convention.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tiering.adapters._idmap import (
    as_vector,
    batched,
    id_to_uuid,
    prepare_vectors,
    split_payload,
    stored_payload,
    translated_errors,
)
from tiering.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    UnsupportedOperationError,
)
from tiering.filters import And, Eq, Filter, In, Not, Or, Range
from tiering.records import ID_KEY, Hit, Id, Metric, Record, Vector

try:
    import httpx
    from qdrant_client import QdrantClient, models
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The Qdrant adapter needs qdrant-client. Install it with pip install 'vector-tiering[qdrant]'."
    ) from exc

logger = logging.getLogger(__name__)

_DISTANCES = {
    Metric.COSINE: models.Distance.COSINE,
    Metric.DOT: models.Distance.DOT,
    Metric.L2: models.Distance.EUCLID,
}

_UNAVAILABLE_GRPC_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"}


class QdrantBackend:
    """One Qdrant collection with a single unnamed dense vector.

    Args:
        client: an open ``QdrantClient``; the backend uses it but :meth:`close` closes it.
        collection: the collection name; it is created when missing.
        dim: vector dimension.
        metric: ``cosine``, ``dot`` or ``l2``.
        batch_size: points per upsert, retrieve and delete request.
        timeout_s: per-request timeout in seconds, passed to every call that accepts one.
            Local mode ignores it.

    Raises:
        ConfigurationError: the collection exists with another dimension, metric, or
            with named vectors.
        BackendUnavailableError: Qdrant cannot be reached.
        BackendError: any other failure while checking or creating the collection.

    Thread safety: the qdrant-client is thread-safe for a server; local mode takes its
    own lock. Writes are serialised by the caller as :class:`tiering.backend.Backend`
    requires.
    """

    @property
    def in_process(self) -> bool:
        """Whether the client runs qdrant-client's local mode inside this process."""
        return type(getattr(self._client, "_client", None)).__name__ == "QdrantLocal"

    def __init__(
        self,
        client: QdrantClient,
        collection: str,
        dim: int,
        metric: Metric | str = Metric.COSINE,
        *,
        batch_size: int = 512,
        timeout_s: int = 30,
    ) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ConfigurationError(f"Invalid dim {dim!r}: use a positive integer.")
        if batch_size < 1:
            raise ConfigurationError(f"Invalid batch_size {batch_size!r}: use 1 or more.")
        self._client = client
        self._collection = collection
        self._dim = dim
        self._metric = Metric.parse(metric)
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._closed = False
        with self._translate("open collection"):
            self._ensure_collection()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> Metric:
        return self._metric

    @property
    def collection(self) -> str:
        """Name of the Qdrant collection."""
        return self._collection

    def _ensure_collection(self) -> None:
        if not self._client.collection_exists(self._collection):
            self._client.create_collection(
                self._collection,
                vectors_config=models.VectorParams(size=self._dim, distance=_DISTANCES[self._metric]),
                timeout=self._timeout_s,
            )
            logger.info(
                "Created Qdrant collection %s (dim %d, %s)",
                self._collection,
                self._dim,
                self._metric.value,
            )
            return

        params = self._client.get_collection(self._collection).config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise ConfigurationError(
                f"Qdrant collection {self._collection!r} uses named vectors, which this "
                "adapter does not support. Use a collection with one unnamed vector."
            )
        if params.size != self._dim or params.distance != _DISTANCES[self._metric]:
            raise ConfigurationError(
                f"Qdrant collection {self._collection!r} stores {params.size}-dimensional "
                f"vectors with distance {params.distance.value}, but dim={self._dim} and "
                f"metric={self._metric.value!r} were requested. Use matching settings or "
                "another collection name."
            )

    def upsert(self, records: Sequence[Record]) -> None:
        for chunk in batched(records, self._batch_size):
            vectors = prepare_vectors(chunk, self._metric)
            batch = models.Batch(
                ids=[point_id(r.id) for r in chunk],
                vectors=vectors.tolist(),
                payloads=[stored_payload(r) for r in chunk],
            )
            with self._translate("upsert"):
                self._client.upsert(self._collection, points=batch, wait=True, timeout=self._timeout_s)

    def search(self, queries: Vector, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self._dim)
        query_filter = to_qdrant_filter(filter) if filter is not None else None
        requests = [
            models.QueryRequest(query=row.tolist(), filter=query_filter, limit=k, with_payload=True)
            for row in queries
        ]
        with self._translate("search"):
            responses = self._client.query_batch_points(
                self._collection, requests=requests, timeout=self._timeout_s
            )
        return [[self._hit(point) for point in response.points] for response in responses]

    def _hit(self, point: models.ScoredPoint) -> Hit:
        record_id, version, payload = split_payload(point.payload, self._where)
        score = float(point.score)
        if self._metric is Metric.L2:
            score = -score * score
        return Hit(id=record_id, score=score, tier="hot", version=version, payload=payload)

    def fetch(self, ids: Sequence[Id]) -> list[Record]:
        found: dict[Id, Record] = {}
        for chunk in batched(ids, self._batch_size):
            with self._translate("fetch"):
                points = self._client.retrieve(
                    self._collection,
                    ids=[point_id(i) for i in chunk],
                    with_payload=True,
                    with_vectors=True,
                    timeout=self._timeout_s,
                )
            for point in points:
                record_id, version, payload = split_payload(point.payload, self._where)
                vector = point.vector
                if not isinstance(vector, list):
                    raise BackendError(
                        f"Qdrant returned no plain vector for id {record_id!r} in "
                        f"{self._where}; the collection must have one unnamed dense vector."
                    )
                found[record_id] = Record(
                    id=record_id,
                    vector=as_vector(vector, self._metric),  # type: ignore[arg-type]
                    payload=payload,
                    version=version,
                )
        return [found[i] for i in ids if i in found]

    def delete(self, ids: Sequence[Id]) -> None:
        for chunk in batched(ids, self._batch_size):
            selector = models.PointIdsList(points=[point_id(i) for i in chunk])
            with self._translate("delete"):
                self._client.delete(
                    self._collection, points_selector=selector, wait=True, timeout=self._timeout_s
                )

    def count(self) -> int:
        with self._translate("count"):
            result = self._client.count(self._collection, exact=True, timeout=self._timeout_s)
        return int(result.count)

    def iter_ids(self, batch_size: int = 1000) -> Iterator[list[Id]]:
        offset: Any = None
        while True:
            with self._translate("list ids"):
                points, offset = self._client.scroll(
                    self._collection,
                    limit=batch_size,
                    offset=offset,
                    with_payload=[ID_KEY],
                    with_vectors=False,
                    timeout=self._timeout_s,
                )
            ids = [split_payload(p.payload, self._where)[0] for p in points]
            if ids:
                yield ids
            if offset is None:
                return

    def close(self) -> None:
        """Close the client. Idempotent; later calls raise BackendError."""
        if self._closed:
            return
        self._closed = True
        with self._translate("close"):
            self._client.close()

    @property
    def _where(self) -> str:
        return f"Qdrant collection {self._collection!r}"

    def _translate(self, operation: str) -> contextlib.AbstractContextManager[None]:
        return translated_errors(translate_error, f"Qdrant {operation} on {self._collection!r}")


def point_id(record_id: Id) -> int | str:
    """Return the Qdrant point id: the int itself, or the uuid5 of a string id."""
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        return int(record_id)
    return id_to_uuid(record_id)


def translate_error(exc: Exception, context: str) -> BackendError:
    """Return the :mod:`tiering.errors` exception for a qdrant-client, httpx or gRPC error.

    Connection failures and timeouts become BackendUnavailableError, a request Qdrant
    cannot serve (HTTP 501, gRPC UNIMPLEMENTED) UnsupportedOperationError, and every
    other failure BackendError. ``context`` names the operation and the collection.
    """
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ResponseHandlingException):
        # qdrant-client wraps transport failures (refused, reset, timed out) in this class.
        return BackendUnavailableError(
            f"{context} failed: Qdrant could not be reached ({detail}). Check the URL and "
            "that the server is running."
        )
    if isinstance(exc, httpx.TransportError | TimeoutError | ConnectionError):
        return BackendUnavailableError(f"{context} failed: Qdrant could not be reached ({detail}).")
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code
        if status in (408, 429, 502, 503, 504):
            return BackendUnavailableError(
                f"{context} failed with HTTP {status}: Qdrant is overloaded or restarting. Retry later."
            )
        if status == 501:
            return UnsupportedOperationError(f"{context} failed: Qdrant does not support it ({detail}).")
        return BackendError(f"{context} failed with HTTP {status}: {exc}")
    grpc_code = _grpc_code_name(exc)
    if grpc_code is not None:
        if grpc_code in _UNAVAILABLE_GRPC_CODES:
            return BackendUnavailableError(
                f"{context} failed: Qdrant's gRPC endpoint returned {grpc_code}. Check the "
                "host, the gRPC port and that the server is running."
            )
        if grpc_code == "UNIMPLEMENTED":
            return UnsupportedOperationError(f"{context} failed: Qdrant does not support it.")
        return BackendError(f"{context} failed with gRPC status {grpc_code}.")
    # Local mode raises ValueError (unknown collection, bad input) and RuntimeError (closed).
    return BackendError(f"{context} failed ({detail}).")


def _grpc_code_name(exc: Exception) -> str | None:
    code = getattr(exc, "code", None)
    if type(exc).__module__.startswith("grpc") and callable(code):
        try:
            return str(code().name)
        except Exception:
            return "UNKNOWN"
    return None


def to_qdrant_filter(node: Filter) -> models.Filter:
    """Translate a :mod:`tiering.filters` tree into a Qdrant ``Filter``.

    Eq becomes MatchValue, In MatchAny, Range a Range condition, And/Or/Not the
    must/should/must_not clauses. A float in Eq or In becomes a closed range on that
    value, because Qdrant matches only strings, integers and booleans exactly.
    """
    condition = _condition(node)
    if isinstance(condition, models.Filter):
        return condition
    return models.Filter(must=[condition])


def _condition(node: Filter) -> Any:
    if isinstance(node, Eq | In | Range) and any(c in node.field for c in ".[]"):
        # Qdrant reads "a.b" and "a[]" as paths into nested objects and arrays, but
        # tiering.filters matches the top-level key with that literal name.
        raise UnsupportedOperationError(
            f"Qdrant cannot filter on payload field {node.field!r}: Qdrant reads '.', '[' and "
            "']' in a key as a nested path. Rename the field without them."
        )
    if isinstance(node, Eq):
        return _match_one(node.field, node.value)
    if isinstance(node, In):
        return _match_any(node.field, node.values)
    if isinstance(node, Range):
        return models.FieldCondition(
            key=node.field,
            range=models.Range(gt=node.gt, gte=node.gte, lt=node.lt, lte=node.lte),
        )
    if isinstance(node, And):
        return models.Filter(must=[_condition(child) for child in node.children])
    if isinstance(node, Or):
        return models.Filter(should=[_condition(child) for child in node.children])
    if isinstance(node, Not):
        return models.Filter(must_not=[_condition(node.child)])
    raise UnsupportedOperationError(f"Unknown filter node {node!r} for Qdrant.")


def _match_one(field: str, value: Any) -> Any:
    if isinstance(value, float):
        return models.FieldCondition(key=field, range=models.Range(gte=value, lte=value))
    return models.FieldCondition(key=field, match=models.MatchValue(value=value))


def _match_any(field: str, values: Sequence[Any]) -> Any:
    # MatchAny takes only all-str or all-int lists; bools and floats get their own clauses.
    strings = [v for v in values if isinstance(v, str)]
    integers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
    others = [v for v in values if isinstance(v, bool | float)]
    clauses: list[Any] = []
    if strings:
        clauses.append(models.FieldCondition(key=field, match=models.MatchAny(any=strings)))
    if integers:
        clauses.append(models.FieldCondition(key=field, match=models.MatchAny(any=integers)))
    clauses.extend(_match_one(field, v) for v in others)
    if len(clauses) == 1:
        return clauses[0]
    return models.Filter(should=clauses)
