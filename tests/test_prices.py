"""The price catalog: the shipped file validates, and broken catalogs get clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tiering.errors import ConfigurationError
from tiering.prices import DEFAULT_CATALOG_PATH, load_catalog


def _shipped() -> dict[str, Any]:
    return json.loads(DEFAULT_CATALOG_PATH.read_text(encoding="utf-8"))


def _write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_shipped_catalog_loads_and_is_dated() -> None:
    catalog = load_catalog()
    assert catalog.date_read == "2026-12"
    assert catalog.price("pinecone.serverless.storage") == 0.33
    assert catalog.price("zilliz.dedicated.performance.cu_hour") == 0.248
    assert catalog.rule("qdrant.memory_factor") == 1.5
    for entry in catalog.prices.values():
        assert entry.source.startswith("https://"), entry.key
        assert entry.date_read == "2026-12", entry.key


def test_shipped_catalog_has_every_s3_class() -> None:
    catalog = load_catalog()
    for prefix in ("s3.standard", "s3.standard_ia", "s3.glacier_ir", "s3.intelligent_tiering"):
        for item in ("storage", "get", "put", "retrieval"):
            assert catalog.price(f"{prefix}.{item}") >= 0
        assert catalog.rule(f"{prefix}.min_storage_days") >= 0
    assert catalog.rule("s3.standard_ia.min_storage_days") == 30
    assert catalog.rule("s3.glacier_ir.min_storage_days") == 90


def test_user_catalog_overrides_price(tmp_path: Path) -> None:
    document = _shipped()
    document["date_read"] = "2027-01"
    for entry in document["prices"]:
        if entry["key"] == "s3.standard.storage":
            entry["price_usd"] = 0.02
    catalog = load_catalog(_write(tmp_path, document))
    assert catalog.price("s3.standard.storage") == 0.02
    assert catalog.date_read == "2027-01"


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope\.json not found"):
        load_catalog(tmp_path / "nope.json")


def test_invalid_json_rejected(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not readable JSON"):
        load_catalog(path)


def test_entry_missing_field_named(tmp_path: Path) -> None:
    document = _shipped()
    del document["prices"][2]["unit"]
    key = document["prices"][2]["key"]
    with pytest.raises(ConfigurationError, match=rf"prices\[2\] \('{key}'\).*'unit'"):
        load_catalog(_write(tmp_path, document))


@pytest.mark.parametrize("bad_price", ["0.33", -1, None, True])
def test_bad_price_rejected(tmp_path: Path, bad_price: object) -> None:
    document = _shipped()
    document["prices"][0]["price_usd"] = bad_price
    with pytest.raises(ConfigurationError, match="price_usd"):
        load_catalog(_write(tmp_path, document))


def test_malformed_date_rejected(tmp_path: Path) -> None:
    document = _shipped()
    document["rules"][0]["date_read"] = "December 2026"
    with pytest.raises(ConfigurationError, match="invalid date_read 'December 2026'"):
        load_catalog(_write(tmp_path, document))


def test_duplicate_key_rejected(tmp_path: Path) -> None:
    document = _shipped()
    document["prices"].append(dict(document["prices"][0]))
    with pytest.raises(ConfigurationError, match="repeats the key"):
        load_catalog(_write(tmp_path, document))


def test_unknown_key_lookup_names_key() -> None:
    catalog = load_catalog()
    with pytest.raises(ConfigurationError, match=r"no price entry 'acme\.storage'"):
        catalog.price("acme.storage")
    with pytest.raises(ConfigurationError, match=r"no rule entry 'acme\.rule'"):
        catalog.rule("acme.rule")
