"""How each adapter spells a filter in its store's language.

The conformance suite checks the results; these tests pin the translated form, so a
change in the translation shows up as a readable diff.
"""

from __future__ import annotations

import pytest

from tiering.errors import UnsupportedOperationError
from tiering.filters import And, Eq, In, Not, Or, Range

# --- Qdrant -----------------------------------------------------------------------------


def test_qdrant_eq_and_in():
    from qdrant_client import models

    from tiering.adapters.qdrant import to_qdrant_filter

    result = to_qdrant_filter(And((Eq("lang", "en"), In("year", (2020, 2021)))))

    assert result == models.Filter(
        must=[
            models.FieldCondition(key="lang", match=models.MatchValue(value="en")),
            models.FieldCondition(key="year", match=models.MatchAny(any=[2020, 2021])),
        ]
    )


def test_qdrant_float_eq_becomes_closed_range():
    from qdrant_client import models

    from tiering.adapters.qdrant import to_qdrant_filter

    result = to_qdrant_filter(Eq("rating", 2.5))

    assert result.must == [models.FieldCondition(key="rating", range=models.Range(gte=2.5, lte=2.5))]


def test_qdrant_mixed_in_splits_by_type():
    from qdrant_client import models

    from tiering.adapters.qdrant import to_qdrant_filter

    result = to_qdrant_filter(In("code", ("a", 1, True)))

    assert result == models.Filter(
        should=[
            models.FieldCondition(key="code", match=models.MatchAny(any=["a"])),
            models.FieldCondition(key="code", match=models.MatchAny(any=[1])),
            models.FieldCondition(key="code", match=models.MatchValue(value=True)),
        ]
    )


def test_qdrant_not_or_range():
    from qdrant_client import models

    from tiering.adapters.qdrant import to_qdrant_filter

    result = to_qdrant_filter(Not(Or((Range("year", gt=2020), Eq("lang", "de")))))

    assert result == models.Filter(
        must_not=[
            models.Filter(
                should=[
                    models.FieldCondition(key="year", range=models.Range(gt=2020)),
                    models.FieldCondition(key="lang", match=models.MatchValue(value="de")),
                ]
            )
        ]
    )


# --- Milvus -----------------------------------------------------------------------------


def test_milvus_eq_guards_missing_key():
    from tiering.adapters.milvus import to_milvus_expression

    expression = to_milvus_expression(Eq("lang", "en"))

    assert expression == (
        '(exists payload["lang"] and (payload["lang"] == "en" or json_contains(payload["lang"], "en")))'
    )


def test_milvus_in_range_not():
    from tiering.adapters.milvus import to_milvus_expression

    expression = to_milvus_expression(Not(And((In("year", (2020, 2021)), Range("rating", gte=1.5, lt=3)))))

    assert expression == (
        '(not ((exists payload["year"] and (payload["year"] == 2020 or payload["year"] == 2021 '
        'or json_contains_any(payload["year"], [2020, 2021]))) and '
        '(exists payload["rating"] and payload["rating"] >= 1.5 and payload["rating"] < 3)))'
    )


def test_milvus_quotes_field_and_value():
    from tiering.adapters.milvus import to_milvus_expression

    expression = to_milvus_expression(Eq('we"ird', 'say "hi"'))

    assert 'payload["we\\"ird"]' in expression
    assert '"say \\"hi\\""' in expression


def test_milvus_bool_literal():
    from tiering.adapters.milvus import to_milvus_expression

    assert "== true" in to_milvus_expression(Eq("public", True))
    assert "== false" in to_milvus_expression(Eq("public", False))


# --- Pinecone ---------------------------------------------------------------------------


def test_pinecone_positive_leaves():
    from tiering.adapters.pinecone import to_pinecone_filter

    result = to_pinecone_filter(
        Or((Eq("lang", "en"), In("year", (2020, 2021)), Range("rating", gt=1, lte=4)))
    )

    assert result == {
        "$or": [
            {"lang": {"$eq": "en"}},
            {"year": {"$in": [2020, 2021]}},
            {"rating": {"$gt": 1, "$lte": 4}},
        ]
    }


def test_pinecone_not_pushed_to_leaves():
    from tiering.adapters.pinecone import to_pinecone_filter

    result = to_pinecone_filter(Not(And((Eq("lang", "en"), Range("year", gte=2020)))))

    assert result == {
        "$or": [
            {"$or": [{"lang": {"$exists": False}}, {"lang": {"$ne": "en"}}]},
            {"$or": [{"year": {"$exists": False}}, {"year": {"$lt": 2020}}]},
        ]
    }


def test_pinecone_double_negation_cancels():
    from tiering.adapters.pinecone import to_pinecone_filter

    assert to_pinecone_filter(Not(Not(In("tags", ("a",))))) == {"tags": {"$in": ["a"]}}


def test_pinecone_not_in_uses_nin():
    from tiering.adapters.pinecone import to_pinecone_filter

    assert to_pinecone_filter(Not(In("lang", ("de", "fr")))) == {
        "$or": [{"lang": {"$exists": False}}, {"lang": {"$nin": ["de", "fr"]}}]
    }


# --- Weaviate ---------------------------------------------------------------------------


def test_weaviate_unknown_field_never_matches():
    from tiering.adapters.weaviate import to_weaviate_filter

    result = to_weaviate_filter(Eq("missing", "x"), {"lang": "text"})

    assert result.target == "_id"
    assert result.value == "00000000-0000-0000-0000-000000000000"


def test_weaviate_number_property_gets_float():
    from tiering.adapters.weaviate import to_weaviate_filter

    result = to_weaviate_filter(Eq("year", 2020), {"year": "number"})

    assert result.target == "year"
    assert result.value == 2020.0
    assert isinstance(result.value, float)


def test_weaviate_int_property_rounds_range_bounds():
    from tiering.adapters.weaviate import to_weaviate_filter

    result = to_weaviate_filter(Range("year", gt=2020.5, lte=2022.9), {"year": "int"})

    assert [f.value for f in result.filters] == [2020, 2022]


def test_weaviate_type_mismatch_never_matches():
    from tiering.adapters.weaviate import to_weaviate_filter

    result = to_weaviate_filter(Eq("year", "2020"), {"year": "number"})

    assert result.target == "_id"


# --- unknown nodes ----------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["qdrant", "milvus", "pinecone", "weaviate"])
def test_unknown_node_rejected(adapter):
    from tiering.adapters import milvus, pinecone, qdrant, weaviate

    translators = {
        "qdrant": qdrant.to_qdrant_filter,
        "milvus": milvus.to_milvus_expression,
        "pinecone": pinecone.to_pinecone_filter,
        "weaviate": lambda node: weaviate.to_weaviate_filter(node, {}),
    }
    with pytest.raises(UnsupportedOperationError, match="Unknown filter node"):
        translators[adapter]("not a filter")  # type: ignore[operator]


def test_qdrant_dotted_field_rejected():
    from tiering.adapters.qdrant import to_qdrant_filter

    for field in ["a.b", "tags[]", "x[0]"]:
        with pytest.raises(UnsupportedOperationError, match="nested path"):
            to_qdrant_filter(Not(Eq(field, 1)))


def test_pinecone_dollar_field_rejected():
    from tiering.adapters.pinecone import to_pinecone_filter

    with pytest.raises(UnsupportedOperationError, match="reserved for operators"):
        to_pinecone_filter(Or((Eq("ok", 1), Range("$price", gt=1))))


def test_pinecone_metadata_skips_dollar_keys():
    import numpy as np

    from tiering.adapters.pinecone import PAYLOAD_KEY, to_metadata
    from tiering.records import Record

    payload = {"$weird": "x", "nested": {"a": 1}, "tags": ["a"], "n": 1.5, "none": None}
    metadata = to_metadata(Record(id="d", vector=np.ones(2, np.float32), payload=payload))

    assert "$weird" not in metadata
    assert "nested" not in metadata
    assert "none" not in metadata
    assert metadata["tags"] == ["a"]
    assert metadata["n"] == 1.5
    assert metadata[PAYLOAD_KEY].startswith("{")
