"""Id mapping and bookkeeping payload keys shared by the backend adapters.

Callers use int or str ids; several stores want something else (Qdrant: unsigned int
or UUID, Weaviate: UUID only). Adapters keep the caller's id and the record version in
the stored payload under :data:`tiering.records.ID_KEY` and
:data:`tiering.records.VERSION_KEY` and strip both before returning a payload.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from tiering.errors import BackendError, TieringError
from tiering.records import ID_KEY, VERSION_KEY, Id, Metric, Record, Vector, encode_id

ID_NAMESPACE = uuid.UUID("4b6f1f5e-3c1a-5d8e-9a57-7d3c2e0f6a11")
"""Namespace of the uuid5 values derived from caller ids; changing it orphans stored data."""

T = TypeVar("T")


def id_to_uuid(record_id: Id) -> str:
    """Return the deterministic uuid5 (as a string) for ``record_id``.

    The uuid is derived from :func:`tiering.records.encode_id`, so ``5`` and ``"5"`` map
    to different uuids.
    """
    return str(uuid.uuid5(ID_NAMESPACE, encode_id(record_id)))


def stored_payload(record: Record) -> dict[str, Any]:
    """Return the record's payload with the original id and the version added."""
    payload = dict(record.payload)
    payload[ID_KEY] = record.id
    payload[VERSION_KEY] = int(record.version)
    return payload


def split_payload(stored: Mapping[str, Any] | None, where: str) -> tuple[Id, int, dict[str, Any]]:
    """Return ``(id, version, payload)`` from a stored payload, without the bookkeeping keys.

    Raises:
        BackendError: the stored object lacks the original id, so it was not written by
            this library; ``where`` names the collection in the message.
    """
    payload = dict(stored or {})
    if ID_KEY not in payload:
        raise BackendError(
            f"A stored object in {where} has no {ID_KEY!r} payload key, so it was not "
            "written by vector-tiering. Use a collection that only this library writes to."
        )
    record_id = payload.pop(ID_KEY)
    version = payload.pop(VERSION_KEY, 0)
    return record_id, int(version or 0), payload


def prepare_vectors(records: Sequence[Record], metric: Metric) -> Vector:
    """Return the records' vectors as one float32 array, unit-normalised for cosine.

    Normalising before the write makes every backend store the same vector whatever it
    does itself, so :meth:`fetch` returns unit vectors for cosine on all of them.
    """
    vectors = np.stack([np.asarray(r.vector, dtype=np.float32).reshape(-1) for r in records])
    if metric is Metric.COSINE:
        vectors = unit_rows(vectors)
    return vectors


def unit_rows(vectors: Vector) -> Vector:
    """Return unit-length copies of the rows of a 2-d array; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


def as_vector(values: Sequence[float], metric: Metric) -> Vector:
    """Return a vector read back from a store as float32, unit-normalised for cosine."""
    vector = np.asarray(values, dtype=np.float32)
    if metric is Metric.COSINE:
        vector = unit_rows(vector.reshape(1, -1))[0]
    return vector


def batched(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextlib.contextmanager
def translated_errors(translate: Callable[[Exception, str], TieringError], context: str) -> Iterator[None]:
    """Re-raise any third-party exception as the library error ``translate`` returns for it.

    Errors that already are :class:`TieringError` pass through unchanged, so nested
    boundaries do not wrap them twice. ``context`` names the operation and the collection.
    """
    try:
        yield
    except TieringError:
        raise
    except Exception as exc:
        raise translate(exc, context) from exc
