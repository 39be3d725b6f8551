"""The Pinecone backend, through the ``pinecone`` SDK's data-plane ``Index``.

One backend is one namespace of one dense index. The tests run the real SDK against
``tests/fakes/pinecone_fake.py``, a local fake of the data-plane REST API, not against
Pinecone.

Ids: Pinecone vector ids are ASCII strings of at most 512 characters, so the vector id
is :func:`tiering.records.encode_id` (``"i:5"``, ``"s:doc-1"``) when that fits, and
``"u:"`` plus a uuid5 of it otherwise (non-ASCII or very long string ids).

Metadata: Pinecone accepts only strings, numbers, booleans and lists of strings, and
stores numbers as 64-bit floats. The adapter therefore stores

* ``_tiering_id`` and ``_tiering_version``: the encoded id and the version, as strings;
* ``_tiering_payload``: the whole payload as JSON, so it round-trips exactly;
* every top-level payload field whose value Pinecone accepts, so filters can use it.

Scores: Pinecone returns cosine similarity, the dot product, and for ``euclidean``
the squared Euclidean distance (Pinecone's indexing documentation says so), which
this adapter negates.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tiering.adapters._idmap import ID_NAMESPACE, as_vector, batched, prepare_vectors, translated_errors
from tiering.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    UnsupportedOperationError,
)
from tiering.filters import And, Eq, Filter, In, Not, Or, Range
from tiering.records import ID_KEY, VERSION_KEY, Hit, Id, Metric, Record, Vector, decode_id, encode_id

try:
    import httpx
    from pinecone import Index
    from pinecone.errors.exceptions import (
        ApiError,
        PineconeConnectionError,
        PineconeError,
        PineconeTimeoutError,
    )
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The Pinecone adapter needs the pinecone SDK. Install it with pip install 'vector-tiering[pinecone]'."
    ) from exc

PAYLOAD_KEY = "_tiering_payload"
"""Metadata key of the JSON-encoded payload."""

PINECONE_METRICS = {Metric.COSINE: "cosine", Metric.DOT: "dotproduct", Metric.L2: "euclidean"}

_MAX_VECTOR_ID_LENGTH = 512
_MAX_DELETE_IDS = 1000
_MAX_LIST_LIMIT = 100
_FETCH_BATCH = 100  # ids travel in the query string, so keep URLs short
_DEFAULT_NAMESPACE_KEYS = ("", "__default__")


def connect_pinecone(host: str, api_key: str, *, timeout_s: float = 30.0) -> Index:
    """Open the SDK's data-plane client for an index host URL (Pinecone or Pinecone Local).

    Raises:
        BackendError: the SDK rejected the host or the key.
    """
    try:
        return Index(host=host, api_key=api_key, timeout=timeout_s)
    except Exception as exc:
        raise translate_error(exc, f"Pinecone connect to {host!r}") from exc


class PineconeBackend:
    """One namespace of a dense Pinecone index.

    Args:
        index: an ``Index`` from :func:`connect_pinecone` or ``Pinecone(...).Index(host=...)``.
        dim: vector dimension; checked against the index.
        metric: ``cosine``, ``dot`` (Pinecone ``dotproduct``) or ``l2`` (``euclidean``);
            checked against the index when it reports its metric.
        namespace: the namespace to keep the records in; ``""`` is the default one.
        batch_size: vectors per upsert request (Pinecone allows up to 1,000 and 2 MB).
        timeout_s: per-request timeout in seconds. The SDK retries connection errors and
            HTTP 408, 429 and 5xx up to 3 times with backoff within each call.

    Raises:
        ConfigurationError: the index has another dimension or metric.
        BackendUnavailableError / BackendError: describing the index failed.

    NOTE: :meth:`count` reads ``describe_index_stats``, which Pinecone serverless
    updates a few seconds after a write; the fake is exact.
    """

    def __init__(
        self,
        index: Index,
        dim: int,
        metric: Metric | str = Metric.COSINE,
        *,
        namespace: str = "",
        batch_size: int = 100,
        timeout_s: float = 30.0,
    ) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ConfigurationError(f"Invalid dim {dim!r}: use a positive integer.")
        if not 1 <= batch_size <= 1000:
            raise ConfigurationError(f"Invalid batch_size {batch_size!r}: use 1 to 1000.")
        self._index = index
        self._dim = dim
        self._metric = Metric.parse(metric)
        self._namespace = namespace
        self._batch_size = batch_size
        self._timeout_s = timeout_s
        self._closed = False
        self._check_index()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> Metric:
        return self._metric

    def _check_index(self) -> None:
        with self._translate("describe index"):
            stats = self._index.describe_index_stats(timeout=self._timeout_s)
        expected = PINECONE_METRICS[self._metric]
        if stats.dimension is not None and stats.dimension != self._dim:
            raise ConfigurationError(
                f"Pinecone index {self._index.host} stores {stats.dimension}-dimensional "
                f"vectors, but dim={self._dim} was requested. Use the index's dimension."
            )
        if stats.metric is not None and stats.metric.lower() != expected:
            raise ConfigurationError(
                f"Pinecone index {self._index.host} uses metric {stats.metric!r}, but "
                f"metric={self._metric.value!r} ({expected}) was requested. Use the index's metric."
            )

    def upsert(self, records: Sequence[Record]) -> None:
        for chunk in batched(records, self._batch_size):
            vectors = prepare_vectors(chunk, self._metric)
            items = [
                {"id": vector_id(r.id), "values": v.tolist(), "metadata": to_metadata(r)}
                for r, v in zip(chunk, vectors, strict=True)
            ]
            with self._translate("upsert"):
                self._index.upsert(vectors=items, namespace=self._namespace, timeout=self._timeout_s)

    def search(self, queries: Vector, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self._dim)
        condition = to_pinecone_filter(filter) if filter is not None else None
        results = []
        for row in queries:
            with self._translate("query"):
                response = self._index.query(
                    vector=row.tolist(),
                    top_k=k,
                    namespace=self._namespace,
                    filter=condition,
                    include_metadata=True,
                    include_values=False,
                    timeout=self._timeout_s,
                )
            results.append([self._hit(match.metadata, match.score) for match in response.matches])
        return results

    def _hit(self, metadata: Mapping[str, Any] | None, score: float) -> Hit:
        record_id, version, payload = from_metadata(metadata, self._where)
        value = float(score)
        if self._metric is Metric.L2:
            value = -value
        return Hit(id=record_id, score=value, tier="hot", version=version, payload=payload)

    def fetch(self, ids: Sequence[Id]) -> list[Record]:
        found: dict[Id, Record] = {}
        for chunk in batched(list(ids), _FETCH_BATCH):
            with self._translate("fetch"):
                response = self._index.fetch(
                    ids=[vector_id(i) for i in chunk],
                    namespace=self._namespace,
                    timeout=self._timeout_s,
                )
            for vector in response.vectors.values():
                record_id, version, payload = from_metadata(vector.metadata, self._where)
                found[record_id] = Record(
                    id=record_id,
                    vector=as_vector(vector.values, self._metric),
                    payload=payload,
                    version=version,
                )
        return [found[i] for i in ids if i in found]

    def delete(self, ids: Sequence[Id]) -> None:
        for chunk in batched(list(ids), _MAX_DELETE_IDS):
            with self._translate("delete"):
                self._index.delete(
                    ids=[vector_id(i) for i in chunk],
                    namespace=self._namespace,
                    timeout=self._timeout_s,
                )

    def count(self) -> int:
        with self._translate("count"):
            stats = self._index.describe_index_stats(timeout=self._timeout_s)
        keys = _DEFAULT_NAMESPACE_KEYS if not self._namespace else (self._namespace,)
        for key in keys:
            if key in stats.namespaces:
                return int(stats.namespaces[key].vector_count)
        return 0

    def iter_ids(self, batch_size: int = 1000) -> Iterator[list[Id]]:
        token: str | None = None
        while True:
            with self._translate("list ids"):
                page = self._index.list_paginated(
                    limit=min(batch_size, _MAX_LIST_LIMIT),
                    pagination_token=token,
                    namespace=self._namespace,
                    timeout=self._timeout_s,
                )
            ids = self._decode_listed([item.id for item in page.vectors if item.id])
            if ids:
                yield ids
            token = page.pagination.next if page.pagination is not None else None
            if not token:
                return

    def _decode_listed(self, vector_ids: list[str]) -> list[Id]:
        decoded: list[Id] = [decode_id(i) for i in vector_ids if not i.startswith("u:")]
        hashed = [i for i in vector_ids if i.startswith("u:")]
        if hashed:
            # A hashed vector id does not contain the caller's id, so read it from metadata.
            with self._translate("list ids"):
                response = self._index.fetch(ids=hashed, namespace=self._namespace, timeout=self._timeout_s)
            decoded.extend(from_metadata(v.metadata, self._where)[0] for v in response.vectors.values())
        return decoded

    def close(self) -> None:
        """Close the SDK's HTTP client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._translate("close"):
            self._index.close()

    @property
    def _where(self) -> str:
        return f"Pinecone namespace {self._namespace!r} of {self._index.host}"

    def _translate(self, operation: str) -> contextlib.AbstractContextManager[None]:
        return translated_errors(translate_error, f"Pinecone {operation} on {self._where}")


def vector_id(record_id: Id) -> str:
    """Return the Pinecone vector id: the encoded id, or ``u:<uuid5>`` when it is not ASCII."""
    encoded = encode_id(record_id)
    if encoded.isascii() and len(encoded) <= _MAX_VECTOR_ID_LENGTH and "\x00" not in encoded:
        return encoded
    return "u:" + uuid.uuid5(ID_NAMESPACE, encoded).hex


def to_metadata(record: Record) -> dict[str, Any]:
    """Return the Pinecone metadata for a record (see the module docstring)."""
    # Pinecone reserves keys that start with "$" for operators.
    metadata: dict[str, Any] = {
        key: value for key, value in record.payload.items() if not key.startswith("$") and _filterable(value)
    }
    metadata[ID_KEY] = encode_id(record.id)
    metadata[VERSION_KEY] = str(int(record.version))
    metadata[PAYLOAD_KEY] = json.dumps(dict(record.payload), ensure_ascii=False)
    return metadata


def from_metadata(metadata: Mapping[str, Any] | None, where: str) -> tuple[Id, int, dict[str, Any]]:
    """Return ``(id, version, payload)`` from the metadata :func:`to_metadata` wrote.

    Raises:
        BackendError: the vector was not written by this library.
    """
    if not metadata or ID_KEY not in metadata or PAYLOAD_KEY not in metadata:
        raise BackendError(
            f"A vector in {where} has no {ID_KEY!r} metadata, so it was not written by "
            "vector-tiering. Use a namespace that only this library writes to."
        )
    payload = json.loads(metadata[PAYLOAD_KEY])
    return decode_id(metadata[ID_KEY]), int(metadata.get(VERSION_KEY, 0)), payload


def _filterable(value: Any) -> bool:
    if isinstance(value, str | bool):
        return True
    if isinstance(value, int | float):
        return math.isfinite(value)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def translate_error(exc: Exception, context: str) -> BackendError:
    """Return the :mod:`tiering.errors` exception for a pinecone SDK or httpx error.

    Connection failures, timeouts, throttling (429) and server errors (5xx) left after
    the SDK's own retries become BackendUnavailableError; a request Pinecone reports it
    does not support becomes UnsupportedOperationError; anything else BackendError.
    """
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, PineconeConnectionError | PineconeTimeoutError | httpx.TransportError):
        return BackendUnavailableError(
            f"{context} failed: Pinecone could not be reached ({detail}). Check the host "
            "URL and that the index is running."
        )
    if isinstance(exc, ApiError):
        status = exc.status_code
        if status in (408, 429) or (status is not None and status >= 500):
            return BackendUnavailableError(
                f"{context} failed with HTTP {status} after the SDK's retries ({exc}). Retry later."
            )
        if "not support" in str(exc).lower():
            return UnsupportedOperationError(f"{context} failed: Pinecone does not support it ({exc}).")
        return BackendError(f"{context} failed with HTTP {status}: {exc}")
    if isinstance(exc, PineconeError):
        return BackendError(f"{context} failed ({detail}).")
    return BackendError(f"{context} failed ({detail}).")


def to_pinecone_filter(node: Filter) -> dict[str, Any]:
    """Translate a :mod:`tiering.filters` tree into Pinecone's metadata filter syntax.

    Pinecone has no ``$not``, so negations are pushed down to the leaves: ``Not(Eq)``
    becomes ``$ne`` or a missing field, ``Not(In)`` ``$nin`` or a missing field, and
    ``Not(Range)`` the complementary bounds or a missing field.
    """
    return _translate_node(node, negate=False)


def _translate_node(node: Filter, negate: bool) -> dict[str, Any]:
    if isinstance(node, Not):
        return _translate_node(node.child, not negate)
    if isinstance(node, And | Or):
        children = [_translate_node(c, negate) for c in node.children]
        conjunction = isinstance(node, And) != negate
        return {"$and" if conjunction else "$or": children}
    if isinstance(node, Eq | In | Range) and node.field.startswith("$"):
        raise UnsupportedOperationError(
            f"Pinecone cannot filter on payload field {node.field!r}: keys that start with "
            "'$' are reserved for operators. Rename the field."
        )
    if isinstance(node, Eq):
        if not negate:
            return {node.field: {"$eq": node.value}}
        return _missing_or(node.field, [{node.field: {"$ne": node.value}}])
    if isinstance(node, In):
        if not negate:
            return {node.field: {"$in": list(node.values)}}
        return _missing_or(node.field, [{node.field: {"$nin": list(node.values)}}])
    if isinstance(node, Range):
        return _translate_range(node, negate)
    raise UnsupportedOperationError(f"Unknown filter node {node!r} for Pinecone.")


def _translate_range(node: Range, negate: bool) -> dict[str, Any]:
    bounds = {"$gt": node.gt, "$gte": node.gte, "$lt": node.lt, "$lte": node.lte}
    present = {operator: value for operator, value in bounds.items() if value is not None}
    if not negate:
        return {node.field: present or {"$exists": True}}
    # NOTE: a non-numeric value in a ranged field matches Not(Range) in matches(), but
    # no complementary bound matches it in Pinecone.
    complement = {"$gt": "$lte", "$gte": "$lt", "$lt": "$gte", "$lte": "$gt"}
    outside = [{node.field: {complement[op]: value}} for op, value in present.items()]
    if not outside:
        return {node.field: {"$exists": False}}
    return _missing_or(node.field, outside)


def _missing_or(field: str, alternatives: list[dict[str, Any]]) -> dict[str, Any]:
    return {"$or": [{field: {"$exists": False}}, *alternatives]}
