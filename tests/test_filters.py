"""The filter model: parsing the dictionary form and evaluating payloads."""

from __future__ import annotations

import pytest

from tiering.errors import FilterError
from tiering.filters import And, Eq, In, Not, Or, Range, fields, matches, parse_filter

PAYLOAD = {"lang": "en", "year": 2021, "tags": ["a", "b"], "draft": False, "score": 0.5}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"lang": "en"}, True),
        ({"lang": "de"}, False),
        ({"lang": {"$in": ["de", "en"]}}, True),
        ({"lang": {"$nin": ["de", "en"]}}, False),
        ({"lang": {"$ne": "de"}}, True),
        ({"year": {"$gte": 2021, "$lt": 2022}}, True),
        ({"year": {"$gt": 2021}}, False),
        ({"score": {"$lte": 0.5}}, True),
        ({"tags": "b"}, True),
        ({"draft": False}, True),
        ({"draft": 0}, False),
        ({"missing": "x"}, False),
        ({"$not": {"missing": "x"}}, True),
        ({"$or": [{"lang": "de"}, {"year": 2021}]}, True),
        ({"$and": [{"lang": "en"}, {"year": 1999}]}, False),
        ({"lang": "en", "year": 2021}, True),
        ({"lang": {"$gt": 3}}, False),
    ],
)
def test_matches_table(spec, expected):
    assert matches(parse_filter(spec), PAYLOAD) is expected


def test_parse_builds_tree():
    node = parse_filter({"$or": [{"a": 1}, {"b": {"$in": [1, 2]}}], "c": {"$gte": 0, "$lt": 5}})

    assert node == And((Or((Eq("a", 1), In("b", (1, 2)))), Range("c", gte=0.0, lt=5.0)))
    assert sorted(fields(node)) == ["a", "b", "c"]


def test_tree_passes_through():
    tree = Not(Eq("a", 1))
    assert parse_filter(tree) is tree
    assert parse_filter(None) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "non-empty mapping"),
        ({"$xor": []}, "Unknown filter operator '\\$xor'"),
        ({"a": {"$regex": "x"}}, "Unknown filter operator '\\$regex' on field 'a'"),
        ({"a": {"$in": "abc"}}, "non-empty list"),
        ({"a": {"$gt": "3"}}, "needs a number"),
        ({"a": [1, 2]}, "use a string, number or boolean"),
        ({"$and": []}, "non-empty list"),
    ],
)
def test_invalid_filters(spec, message):
    with pytest.raises(FilterError, match=message):
        parse_filter(spec)
