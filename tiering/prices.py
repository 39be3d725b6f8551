"""The dated price catalog: vendor prices and billing rules, loaded from JSON data.

The catalog shipped with the package is ``tiering/catalog/prices.json``. A user can
pass their own file with the same layout (for example with negotiated prices):

* ``date_read``: when the figures were read, ``YYYY-MM`` or ``YYYY-MM-DD``;
* ``prices``: entries with ``key``, ``vendor``, ``product``, ``item``, ``unit``,
  ``price_usd``, ``region``, ``date_read`` and ``source`` (URL or document name);
* ``rules``: billing rules that are numbers but not prices (minimum read units,
  minimum storage days, memory factors), with ``key``, ``vendor``, ``rule``,
  ``value``, ``unit``, ``date_read`` and ``source``.

Loading validates every entry and raises :class:`~tiering.errors.ConfigurationError`
naming the file, the entry and the field that is wrong.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tiering.errors import ConfigurationError

DEFAULT_CATALOG_PATH = Path(__file__).resolve().parent / "catalog" / "prices.json"

_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])(-\d{2})?$")
_PRICE_FIELDS = ("key", "vendor", "product", "item", "unit", "region", "date_read", "source")
_RULE_FIELDS = ("key", "vendor", "rule", "unit", "date_read", "source")


@dataclass(frozen=True)
class PriceEntry:
    """One list price: what is sold, per which unit, where, when it was read and from where."""

    key: str
    vendor: str
    product: str
    item: str
    unit: str
    price_usd: float
    region: str
    date_read: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class RuleEntry:
    """One numeric billing rule, such as a minimum charge or a vendor's memory factor."""

    key: str
    vendor: str
    rule: str
    value: float
    unit: str
    date_read: str
    source: str


@dataclass(frozen=True)
class Catalog:
    """A validated price catalog. Immutable and safe to share between threads."""

    path: str
    date_read: str
    prices: Mapping[str, PriceEntry]
    rules: Mapping[str, RuleEntry]

    def price(self, key: str) -> float:
        """Return the price in USD of entry ``key``, per the unit that entry names.

        Raises:
            ConfigurationError: the catalog has no price entry ``key``.
        """
        entry = self.prices.get(key)
        if entry is None:
            raise ConfigurationError(
                f"Price catalog {self.path} has no price entry {key!r}. Add it to the "
                f"'prices' list or use the shipped catalog {DEFAULT_CATALOG_PATH}."
            )
        return entry.price_usd

    def rule(self, key: str) -> float:
        """Return the value of billing rule ``key``, in the unit that entry names.

        Raises:
            ConfigurationError: the catalog has no rule entry ``key``.
        """
        entry = self.rules.get(key)
        if entry is None:
            raise ConfigurationError(
                f"Price catalog {self.path} has no rule entry {key!r}. Add it to the "
                f"'rules' list or use the shipped catalog {DEFAULT_CATALOG_PATH}."
            )
        return entry.value


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a price catalog; ``None`` loads the shipped one (cached).

    Raises:
        ConfigurationError: the file is missing, is not JSON, or an entry is missing a
            field, has a field of the wrong type, a negative price or a malformed date.
    """
    if path is None:
        return _default_catalog()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _default_catalog() -> Catalog:
    return _load(DEFAULT_CATALOG_PATH)


def _load(path: Path) -> Catalog:
    if not path.is_file():
        raise ConfigurationError(f"Price catalog {path} not found. Check the path.")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigurationError(f"Price catalog {path} is not readable JSON: {exc}.") from exc
    if not isinstance(document, dict):
        raise ConfigurationError(f"Price catalog {path} must be a JSON object at the top level.")

    date_read = document.get("date_read")
    if not isinstance(date_read, str) or not _DATE.match(date_read):
        raise ConfigurationError(
            f"Price catalog {path} has an invalid top-level 'date_read' {date_read!r}. "
            "Write the date the prices were read as YYYY-MM or YYYY-MM-DD."
        )
    prices = {e.key: e for e in _entries(path, document, "prices", _price_entry)}
    rules = {e.key: e for e in _entries(path, document, "rules", _rule_entry)}
    return Catalog(str(path), date_read, prices, rules)


def _entries(path: Path, document: dict[str, Any], section: str, build: Any) -> list[Any]:
    raw = document.get(section)
    if not isinstance(raw, list):
        raise ConfigurationError(
            f"Price catalog {path} has no '{section}' list. Add one (it may be empty)."
        )
    entries = []
    seen: set[str] = set()
    for position, item in enumerate(raw):
        where = f"Price catalog {path}, {section}[{position}]"
        if not isinstance(item, dict):
            raise ConfigurationError(f"{where} must be a JSON object, got {item!r}.")
        entry = build(where, item)
        if entry.key in seen:
            raise ConfigurationError(f"{where} repeats the key {entry.key!r}. Keys must be unique.")
        seen.add(entry.key)
        entries.append(entry)
    return entries


def _price_entry(where: str, item: dict[str, Any]) -> PriceEntry:
    fields = _text_fields(where, item, _PRICE_FIELDS)
    price = _number(where, item, "price_usd")
    note = item.get("note", "")
    return PriceEntry(price_usd=price, note=str(note), **fields)


def _rule_entry(where: str, item: dict[str, Any]) -> RuleEntry:
    fields = _text_fields(where, item, _RULE_FIELDS)
    return RuleEntry(value=_number(where, item, "value"), **fields)


def _text_fields(where: str, item: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    label = f"{where} ({item.get('key')!r})" if isinstance(item.get("key"), str) else where
    fields = {}
    for name in names:
        value = item.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(
                f"{label} is missing the text field {name!r} (got {value!r}). Fill it in."
            )
        fields[name] = value
    if not _DATE.match(fields["date_read"]):
        raise ConfigurationError(
            f"{label} has an invalid date_read {fields['date_read']!r}. Use YYYY-MM or YYYY-MM-DD."
        )
    return fields


def _number(where: str, item: dict[str, Any], name: str) -> float:
    value = item.get(name)
    label = f"{where} ({item.get('key')!r})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(
            f"{label} has a non-numeric {name!r} {value!r}. Write a plain JSON number."
        )
    if not math.isfinite(value) or value < 0:
        raise ConfigurationError(
            f"{label} has an invalid {name!r} {value!r}. It must be a finite number >= 0."
        )
    return float(value)
