"""Records, hits, metrics and the score convention shared by every tier and backend.

Score convention: a higher score is always a better match.

* ``cosine``: the cosine similarity, in [-1, 1]. Vectors are stored unit-normalised.
* ``dot``: the inner product.
* ``l2``: the negated squared Euclidean distance, so ``0`` is an exact match.

Adapters convert whatever their vector store returns into this convention.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tiering.errors import ValidationError

Id = int | str
Tier = Literal["hot", "cold"]
Vector = npt.NDArray[np.float32]

MAX_K = 1000
"""The largest ``k`` a search accepts."""

MAX_ID_LENGTH = 512
"""Maximum length of a string id, in characters."""

RESERVED_PREFIX = "_tiering"
"""Payload keys starting with this prefix are reserved for the bookkeeping of this library."""

ID_KEY = "_tiering_id"
"""Payload key under which adapters keep the caller's original id (int or str)."""

VERSION_KEY = "_tiering_version"
"""Payload key under which adapters keep the record's version (int)."""


class Metric(str, enum.Enum):
    """Similarity metric of a collection."""

    COSINE = "cosine"
    DOT = "dot"
    L2 = "l2"

    @classmethod
    def parse(cls, value: str | Metric) -> Metric:
        """Return the metric named by ``value`` (case-insensitive; ``euclidean`` means ``l2``).

        Raises:
            ValidationError: the name is not a supported metric.
        """
        if isinstance(value, Metric):
            return value
        aliases = {"euclidean": "l2", "ip": "dot", "inner_product": "dot", "angular": "cosine"}
        name = str(value).strip().lower()
        name = aliases.get(name, name)
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(m.value for m in cls)
            raise ValidationError(f"Unknown metric {value!r}. Use one of: {known}.") from None


@dataclass(frozen=True)
class Record:
    """One stored vector: its id, the vector, a JSON-like payload and its version.

    ``version`` is assigned by the store on upsert and grows with every write of the
    id; 0 means "not assigned yet".
    """

    id: Id
    vector: Vector
    payload: Mapping[str, Any] = field(default_factory=dict)
    version: int = 0


@dataclass(frozen=True)
class Hit:
    """One search result, scored by the convention in this module's docstring."""

    id: Id
    score: float
    tier: Tier
    version: int = 0
    payload: Mapping[str, Any] = field(default_factory=dict)


def check_id(value: object) -> Id:
    """Return ``value`` if it is a valid id: a non-negative int below 2**63 or a string.

    Raises:
        ValidationError: the id has another type, is empty, too long, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int | str | np.integer):
        raise ValidationError(f"Invalid id {value!r} of type {type(value).__name__}: ids must be int or str.")
    if isinstance(value, np.integer):
        value = int(value)
    if isinstance(value, int):
        if not 0 <= value < 2**63:
            raise ValidationError(
                f"Invalid id {value}: integer ids must be in [0, 2**63). Use a string id instead."
            )
        return value
    if not value or len(value) > MAX_ID_LENGTH:
        raise ValidationError(
            f"Invalid id {value[:40]!r}: string ids must have 1 to {MAX_ID_LENGTH} characters."
        )
    return value


def check_ids(values: Sequence[object], *, unique: bool = True) -> list[Id]:
    """Validate a batch of ids; with ``unique``, reject a batch that repeats an id.

    Raises:
        ValidationError: an id is invalid, or (with ``unique``) appears twice.
    """
    ids = [check_id(v) for v in values]
    if unique and len(set(ids)) != len(ids):
        seen: set[Id] = set()
        duplicate = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise ValidationError(f"Duplicate id {duplicate!r} in one batch. Send each id once per call.")
    return ids


def encode_id(value: Id) -> str:
    """Return a string that keeps the id's type: ``i:<digits>`` or ``s:<text>``."""
    return f"i:{value}" if isinstance(value, int) else f"s:{value}"


def decode_id(text: str) -> Id:
    """Invert :func:`encode_id`.

    Raises:
        ValueError: the text does not start with ``i:`` or ``s:``.
    """
    if text.startswith("i:"):
        return int(text[2:])
    if text.startswith("s:"):
        return text[2:]
    raise ValueError(f"Invalid encoded id {text!r}: expected an 'i:' or 's:' prefix.")


def check_vectors(vectors: npt.ArrayLike, dim: int, *, what: str = "vector") -> Vector:
    """Return ``vectors`` as a C-contiguous float32 array of shape (n, dim).

    A single 1-d vector becomes shape (1, dim).

    Raises:
        ValidationError: the shape does not match ``dim``, or a value is NaN or infinite.
    """
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"Invalid {what}: not a numeric array ({exc}).") from exc
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2 or array.shape[1] != dim:
        got = array.shape[-1] if array.ndim >= 1 else 0
        raise ValidationError(
            f"Wrong {what} dimension {got} (shape {array.shape}): this collection "
            f"stores {dim}-dimensional vectors."
        )
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise ValidationError(
            f"Invalid {what} at row {row}: it contains NaN or infinite values. "
            "Replace or drop it before sending."
        )
    return np.ascontiguousarray(array)


def check_k(k: object) -> int:
    """Return ``k`` if it is an int in [1, MAX_K].

    Raises:
        ValidationError: ``k`` is not an int or is out of range.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= int(k) <= MAX_K:
        raise ValidationError(f"Invalid k {k!r}: k must be an integer from 1 to {MAX_K}.")
    return int(k)


def check_payload(payload: object, record_id: Id) -> dict[str, Any]:
    """Return ``payload`` as a dict with string keys, none of them reserved.

    Raises:
        ValidationError: the payload is not a mapping, or a key is not a string or reserved.
    """
    if payload is None:
        return {}
    if not isinstance(payload, Mapping):
        raise ValidationError(
            f"Invalid payload for id {record_id!r}: expected a mapping, got {type(payload).__name__}."
        )
    for key in payload:
        if not isinstance(key, str) or key.startswith(RESERVED_PREFIX):
            raise ValidationError(
                f"Invalid payload key {key!r} for id {record_id!r}: keys must be strings "
                f"and must not start with {RESERVED_PREFIX!r}."
            )
    return dict(payload)


def normalize_rows(vectors: Vector) -> Vector:
    """Return unit-length copies of the rows; zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)
