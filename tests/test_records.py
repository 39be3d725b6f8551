"""Input checks on ids, vectors, k, metrics and payloads."""

from __future__ import annotations

import numpy as np
import pytest

from tiering.errors import ValidationError
from tiering.records import (
    MAX_K,
    Metric,
    check_id,
    check_ids,
    check_k,
    check_payload,
    check_vectors,
    decode_id,
    encode_id,
)


@pytest.mark.parametrize("value", [0, 2**63 - 1, "x", "ü" * 512, np.int64(5)])
def test_valid_ids(value):
    assert check_id(value) == value


@pytest.mark.parametrize("value", [-1, 2**63, "", "x" * 513, 1.0, None, True, b"x", (1,)])
def test_invalid_ids(value):
    with pytest.raises(ValidationError, match="Invalid id"):
        check_id(value)


def test_duplicate_ids_named():
    with pytest.raises(ValidationError, match="Duplicate id 'b'"):
        check_ids(["a", "b", "b"])
    assert check_ids([1, 1], unique=False) == [1, 1]


def test_id_encoding_keeps_type():
    for value in (7, "7", "i:odd", ""):
        assert decode_id(encode_id(value)) == value
    with pytest.raises(ValueError, match="prefix"):
        decode_id("x:1")


def test_vectors_shape_and_values():
    assert check_vectors([1, 2, 3], 3).shape == (1, 3)
    with pytest.raises(ValidationError, match="dimension 2"):
        check_vectors([[1, 2]], 3)
    with pytest.raises(ValidationError, match="row 1"):
        check_vectors([[1, 2, 3], [1, np.inf, 3]], 3)
    with pytest.raises(ValidationError, match="not a numeric array"):
        check_vectors([["a", "b", "c"]], 3)


@pytest.mark.parametrize("k", [0, MAX_K + 1, 1.0, None, False])
def test_invalid_k(k):
    with pytest.raises(ValidationError, match="Invalid k"):
        check_k(k)


def test_metric_names():
    assert Metric.parse("Euclidean") is Metric.L2
    assert Metric.parse("ip") is Metric.DOT
    with pytest.raises(ValidationError, match=r"Unknown metric 'hamming'\. Use one of: cosine, dot, l2"):
        Metric.parse("hamming")


def test_payload_checks():
    assert check_payload(None, 1) == {}
    with pytest.raises(ValidationError, match="expected a mapping"):
        check_payload(["a"], 1)
    with pytest.raises(ValidationError, match="keys must be strings"):
        check_payload({1: "a"}, 1)
