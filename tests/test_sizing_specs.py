"""Parsing of the sizing sweep options."""

from __future__ import annotations

import pytest

from tiering.errors import ValidationError
from tiering.sizing.specs import (
    IndexSpec,
    RoutingSpec,
    parse_fraction_list,
    parse_index,
    parse_int_list,
    parse_routing,
    parse_synthetic,
)


def test_index_flat() -> None:
    assert parse_index("flat") == IndexSpec("flat")


def test_index_hnsw_parameters() -> None:
    spec = parse_index("hnsw:M=32,ef=64,efc=80")
    assert spec == IndexSpec("hnsw", m=32, ef_search=64, ef_construction=80)
    assert spec.label == "hnsw:M=32,ef=64,efc=80"


def test_index_hnsw_defaults() -> None:
    spec = parse_index("hnsw:M=16,ef=32")
    assert spec.ef_construction == 40


def test_index_ivf_parameters() -> None:
    assert parse_index("ivf:nlist=64,nprobe=4") == IndexSpec("ivf", nlist=64, nprobe=4)


@pytest.mark.parametrize(
    "text",
    ["hnsw:M=0", "hnsw:M=abc", "hnsw:Q=3", "hnsw:M=16,M=8", "ivf:nlist", "lsh", "flat:x=1", ""],
)
def test_index_malformed_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match=r"index spec|Invalid"):
        parse_index(text)


def test_index_error_names_value_and_forms() -> None:
    with pytest.raises(ValidationError) as info:
        parse_index("hnsw:M=sixteen")
    assert "hnsw:M=sixteen" in str(info.value)
    assert "positive integer" in str(info.value)


def test_routing_forms() -> None:
    assert parse_routing("all") == RoutingSpec("all")
    assert parse_routing("nearest:2") == RoutingSpec("nearest", 2)
    assert parse_routing("nearest:2").label == "nearest:2"


@pytest.mark.parametrize("text", ["nearest", "nearest:0", "nearest:x", "random:1", "any"])
def test_routing_malformed_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match="routing"):
        parse_routing(text)


def test_int_list_deduplicates() -> None:
    assert parse_int_list("1,2,4,8,2", "--shards") == [1, 2, 4, 8]


@pytest.mark.parametrize("text", ["", "1,,2", "1,two", "0,1", "-1", "1.5"])
def test_int_list_malformed_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match="--shards"):
        parse_int_list(text, "--shards")


def test_fraction_list() -> None:
    assert parse_fraction_list("1,0.5,0.2", "--hot-fraction") == [1.0, 0.5, 0.2]


@pytest.mark.parametrize("text", ["0", "1.5", "x", "0.5,", "nan"])
def test_fraction_list_malformed_rejected(text: str) -> None:
    with pytest.raises(ValidationError, match="--hot-fraction"):
        parse_fraction_list(text, "--hot-fraction")


def test_synthetic() -> None:
    assert parse_synthetic("200000,128") == (200000, 128)
    with pytest.raises(ValidationError, match="N,DIM"):
        parse_synthetic("200000")
    with pytest.raises(ValidationError, match="DIM"):
        parse_synthetic("10,0")
