"""Parsing of the sweep options: index specs, routing specs and value lists.

Every parser raises :class:`~tiering.errors.ValidationError` with the offending value
and the accepted form, so the CLI can show it as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from tiering.errors import ValidationError

INDEX_FORMS = "flat, hnsw:M=16,ef=32[,efc=40] or ivf:nlist=256,nprobe=8"
ROUTING_FORMS = "all or nearest:P (P >= 1)"

T = TypeVar("T")


@dataclass(frozen=True)
class IndexSpec:
    """A per-shard FAISS index: ``kind`` is flat, hnsw or ivf, with its parameters.

    HNSW: ``m`` links per node, ``ef_search`` and ``ef_construction``.
    IVF: ``nlist`` lists and ``nprobe`` lists searched per query.
    """

    kind: str
    m: int = 16
    ef_search: int = 32
    ef_construction: int = 40
    nlist: int = 256
    nprobe: int = 8

    @property
    def label(self) -> str:
        """Return the spec in the form the CLI accepts."""
        if self.kind == "hnsw":
            return f"hnsw:M={self.m},ef={self.ef_search},efc={self.ef_construction}"
        if self.kind == "ivf":
            return f"ivf:nlist={self.nlist},nprobe={self.nprobe}"
        return "flat"


@dataclass(frozen=True)
class RoutingSpec:
    """Query routing: to ``all`` shards, or to the ``probes`` nearest by centroid."""

    kind: str
    probes: int = 0

    @property
    def label(self) -> str:
        """Return the spec in the form the CLI accepts."""
        return "all" if self.kind == "all" else f"nearest:{self.probes}"


_INDEX_KEYS = {
    "hnsw": {
        "m": "m",
        "ef": "ef_search",
        "efsearch": "ef_search",
        "efc": "ef_construction",
        "efconstruction": "ef_construction",
    },
    "ivf": {"nlist": "nlist", "nprobe": "nprobe"},
}


def parse_index(text: str) -> IndexSpec:
    """Parse ``flat``, ``hnsw:M=16,ef=32`` or ``ivf:nlist=256,nprobe=8``.

    Raises:
        ValidationError: unknown kind, unknown or repeated parameter, or a value that
            is not a positive integer.
    """
    raw = text.strip()
    kind, _, rest = raw.partition(":")
    kind = kind.strip().lower()
    if kind == "flat" and not rest.strip():
        return IndexSpec("flat")
    if kind not in _INDEX_KEYS:
        raise ValidationError(f"Invalid index spec {text!r}. Use {INDEX_FORMS}.")

    values: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        field = _INDEX_KEYS[kind].get(key.strip().lower())
        if not sep or field is None or field in values:
            raise ValidationError(
                f"Invalid parameter {part!r} in index spec {text!r}. Use {INDEX_FORMS}."
            )
        values[field] = _positive_int(value, f"{part!r} in index spec {text!r}")
    return IndexSpec(kind, **values)


def parse_routing(text: str) -> RoutingSpec:
    """Parse ``all`` or ``nearest:P``.

    Raises:
        ValidationError: another form, or P not a positive integer.
    """
    raw = text.strip().lower()
    if raw == "all":
        return RoutingSpec("all")
    kind, sep, probes = raw.partition(":")
    if kind != "nearest" or not sep:
        raise ValidationError(f"Invalid routing {text!r}. Use {ROUTING_FORMS}.")
    return RoutingSpec("nearest", _positive_int(probes, f"probe count in routing {text!r}"))


def parse_int_list(text: str, option: str) -> list[int]:
    """Parse a comma-separated list of positive integers such as ``1,2,4,8``.

    Raises:
        ValidationError: empty list, or an item that is not a positive integer.
    """
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise ValidationError(
            f"Invalid {option} list {text!r}: write positive integers separated by commas, "
            "for example 1,2,4,8."
        )
    return _unique([_positive_int(item, f"{item!r} in {option} {text!r}") for item in items])


def parse_fraction_list(text: str, option: str) -> list[float]:
    """Parse a comma-separated list of fractions in (0, 1] such as ``1,0.5,0.2``.

    Raises:
        ValidationError: empty list, or an item outside (0, 1].
    """
    values = []
    for item in text.split(","):
        try:
            value = float(item)
        except ValueError:
            value = float("nan")
        if not 0 < value <= 1:
            raise ValidationError(
                f"Invalid {option} value {item.strip()!r} in {text!r}: use fractions in (0, 1] "
                "separated by commas, for example 1,0.5,0.2."
            )
        values.append(value)
    return _unique(values)


def parse_synthetic(text: str) -> tuple[int, int]:
    """Parse ``N,DIM`` for seeded synthetic data.

    Raises:
        ValidationError: not two positive integers.
    """
    parts = text.split(",")
    if len(parts) != 2:
        raise ValidationError(
            f"Invalid --synthetic {text!r}: write N,DIM, for example 200000,128."
        )
    return _positive_int(parts[0], f"N in --synthetic {text!r}"), _positive_int(
        parts[1], f"DIM in --synthetic {text!r}"
    )


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValidationError(f"Invalid {what}: expected a positive integer.")
    return value


def _unique(values: list[T]) -> list[T]:
    return list(dict.fromkeys(values))
