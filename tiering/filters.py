"""The backend-neutral payload filter model.

A filter is a tree of :class:`Eq`, :class:`In`, :class:`Range`, :class:`And`,
:class:`Or` and :class:`Not` nodes. Callers may also pass the dictionary form that
Pinecone and MongoDB use, which :func:`parse_filter` turns into that tree::

    {"lang": "en"}                                  # equality
    {"lang": {"$in": ["en", "de"]}}                 # membership
    {"year": {"$gte": 2020, "$lt": 2025}}           # numeric range
    {"$and": [{...}, {...}]}, {"$or": [...]}, {"$not": {...}}

Adapters translate the tree into their store's filter language; the cold tier
evaluates it on payloads with :func:`matches`. A record without the field never
matches a leaf condition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tiering.errors import FilterError

Scalar = str | int | float | bool


@dataclass(frozen=True)
class Eq:
    """``field == value``."""

    field: str
    value: Scalar


@dataclass(frozen=True)
class In:
    """``field`` equals one of ``values``."""

    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    """Numeric range on ``field``; unset bounds are open."""

    field: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class And:
    """Every child matches."""

    children: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    """At least one child matches."""

    children: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    """The child does not match."""

    child: Filter


Filter = Eq | In | Range | And | Or | Not

_RANGE_OPERATORS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


def parse_filter(spec: Filter | Mapping[str, Any] | None) -> Filter | None:
    """Return the filter tree for ``spec`` (a tree, the dictionary form, or None).

    Raises:
        FilterError: the dictionary uses an unknown operator or an invalid value.
    """
    if spec is None or isinstance(spec, Eq | In | Range | And | Or | Not):
        return spec
    if not isinstance(spec, Mapping) or not spec:
        raise FilterError(f"Invalid filter {spec!r}: expected a non-empty mapping such as {{'lang': 'en'}}.")
    nodes = [_parse_entry(key, value) for key, value in spec.items()]
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _parse_entry(key: str, value: Any) -> Filter:
    if key in ("$and", "$or"):
        if not isinstance(value, Sequence) or isinstance(value, str) or not value:
            raise FilterError(f"Invalid filter: {key} needs a non-empty list of filters.")
        children = tuple(_require(parse_filter(child)) for child in value)
        return And(children) if key == "$and" else Or(children)
    if key == "$not":
        return Not(_require(parse_filter(value)))
    if key.startswith("$"):
        raise FilterError(f"Unknown filter operator {key!r}. Use $and, $or or $not at the top.")
    if isinstance(value, Mapping):
        return _parse_field_operators(key, value)
    return Eq(key, _check_scalar(key, value))


def _parse_field_operators(field_name: str, operators: Mapping[str, Any]) -> Filter:
    nodes: list[Filter] = []
    bounds: dict[str, float] = {}
    for operator, operand in operators.items():
        if operator == "$eq":
            nodes.append(Eq(field_name, _check_scalar(field_name, operand)))
        elif operator == "$ne":
            nodes.append(Not(Eq(field_name, _check_scalar(field_name, operand))))
        elif operator in ("$in", "$nin"):
            if isinstance(operand, str) or not isinstance(operand, Sequence) or not operand:
                raise FilterError(f"Invalid filter on {field_name!r}: {operator} needs a non-empty list.")
            members = In(field_name, tuple(_check_scalar(field_name, v) for v in operand))
            nodes.append(members if operator == "$in" else Not(members))
        elif operator in _RANGE_OPERATORS:
            if isinstance(operand, bool) or not isinstance(operand, int | float):
                raise FilterError(
                    f"Invalid filter on {field_name!r}: {operator} needs a number, got {operand!r}."
                )
            bounds[_RANGE_OPERATORS[operator]] = float(operand)
        else:
            raise FilterError(
                f"Unknown filter operator {operator!r} on field {field_name!r}. "
                "Use $eq, $ne, $in, $nin, $gt, $gte, $lt or $lte."
            )
    if bounds:
        nodes.append(Range(field_name, **bounds))
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _check_scalar(field_name: str, value: Any) -> Scalar:
    if not isinstance(value, str | int | float | bool):
        raise FilterError(
            f"Invalid filter value {value!r} on field {field_name!r}: use a string, number or boolean."
        )
    return value


def _require(node: Filter | None) -> Filter:
    if node is None:
        raise FilterError("Invalid filter: a nested filter is empty.")
    return node


def fields(node: Filter) -> Iterator[str]:
    """Yield every payload field the filter names."""
    if isinstance(node, And | Or):
        for child in node.children:
            yield from fields(child)
    elif isinstance(node, Not):
        yield from fields(node.child)
    else:
        yield node.field


def matches(node: Filter, payload: Mapping[str, Any]) -> bool:
    """Return whether ``payload`` satisfies the filter.

    A leaf on a field the payload lacks is false; so ``Not`` of it is true.
    """
    if isinstance(node, Eq):
        return node.field in payload and _equal(payload[node.field], node.value)
    if isinstance(node, In):
        return node.field in payload and any(_equal(payload[node.field], v) for v in node.values)
    if isinstance(node, Range):
        return _in_range(node, payload.get(node.field))
    if isinstance(node, And):
        return all(matches(child, payload) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, payload) for child in node.children)
    return not matches(node.child, payload)


def _equal(stored: Any, wanted: Scalar) -> bool:
    # Keep True distinct from 1 the way JSON-typed stores do.
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(stored, list):
        return any(_equal(item, wanted) for item in stored)
    return bool(stored == wanted)


def _in_range(node: Range, stored: Any) -> bool:
    if isinstance(stored, bool) or not isinstance(stored, int | float):
        return False
    return not (
        (node.gt is not None and not stored > node.gt)
        or (node.gte is not None and not stored >= node.gte)
        or (node.lt is not None and not stored < node.lt)
        or (node.lte is not None and not stored <= node.lte)
    )
