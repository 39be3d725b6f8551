"""One conformance suite for every backend adapter.

Each test runs once per backend in ``tests/backends.py`` and compares the adapter with
exact numpy scores and with :func:`tiering.filters.matches` evaluated in Python.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from tiering.filters import And, Eq, Filter, In, Not, Or, Range, matches, parse_filter
from tiering.records import Hit, Metric, Record, normalize_rows
from tiering.scoring import score_matrix

DIM = 16
SCORE_TOLERANCE = 1e-3

PAYLOADS: list[dict[str, Any]] = [
    {"lang": "en", "year": 2019, "rating": 4.5, "tags": ["news", "tech"], "public": True},
    {"lang": "de", "year": 2020, "rating": 3.0, "tags": ["tech"], "public": False},
    {"lang": "en", "year": 2021, "rating": 2.5, "tags": ["sport"]},
    {"lang": "fr", "year": 2022, "public": True},
    {"lang": "de"},
    {"year": 2023, "rating": 5.0, "tags": ["news"]},
]


def make_records(count: int, dim: int = DIM, seed: int = 7, version: int = 1) -> list[Record]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    return [
        Record(id=i, vector=vectors[i], payload=dict(PAYLOADS[i % len(PAYLOADS)]), version=version)
        for i in range(count)
    ]


def exact_scores(records: list[Record], queries: np.ndarray, metric: Metric) -> np.ndarray:
    vectors = np.stack([r.vector for r in records]).astype(np.float32)
    if metric is Metric.COSINE:
        vectors = normalize_rows(vectors)
        queries = normalize_rows(queries)
    return score_matrix(queries, vectors, metric)


def hit_ids(hits: list[Hit]) -> list[Any]:
    return [h.id for h in hits]


# --- writes and reads -------------------------------------------------------------------


def test_upsert_then_count(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    backend.upsert(make_records(25))
    assert backend.count() == 25


def test_upsert_overwrites_record(make_backend):
    backend = make_backend(DIM, Metric.L2)
    first = make_records(3, seed=1, version=1)
    backend.upsert(first)
    replacement = Record(id=1, vector=np.full(DIM, 0.5, np.float32), payload={"v": 2}, version=9)
    backend.upsert([replacement])

    assert backend.count() == 3
    [fetched] = backend.fetch([1])
    assert fetched.version == 9
    assert dict(fetched.payload) == {"v": 2}
    np.testing.assert_allclose(fetched.vector, replacement.vector, atol=1e-6)


def test_fetch_leaves_out_missing_ids(make_backend):
    backend = make_backend(DIM, Metric.DOT)
    records = make_records(5)
    backend.upsert(records)

    fetched = backend.fetch([3, 99, 0, "absent"])

    assert [r.id for r in fetched] == [3, 0]
    np.testing.assert_allclose(fetched[0].vector, records[3].vector, atol=1e-5)
    assert dict(fetched[0].payload) == PAYLOADS[3]
    assert fetched[0].version == 1


def test_fetch_cosine_returns_unit_vector(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    record = Record(id="a", vector=np.arange(1, DIM + 1, dtype=np.float32), version=2)
    backend.upsert([record])

    [fetched] = backend.fetch(["a"])

    expected = normalize_rows(record.vector.reshape(1, -1))[0]
    np.testing.assert_allclose(fetched.vector, expected, atol=1e-5)
    assert fetched.vector.dtype == np.float32


def test_fetch_empty_request(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    backend.upsert(make_records(2))
    assert backend.fetch([]) == []


def test_delete_ignores_missing_ids(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    backend.upsert(make_records(6))

    backend.delete([1, 4, 1000, "missing"])
    backend.delete([1])

    assert backend.count() == 4
    assert [r.id for r in backend.fetch([0, 1, 2, 3, 4, 5])] == [0, 2, 3, 5]
    hits = backend.search(make_records(1, seed=3)[0].vector.reshape(1, -1), 10)[0]
    assert sorted(hit_ids(hits)) == [0, 2, 3, 5]


def test_iter_ids_yields_each_id_once(make_backend):
    backend = make_backend(DIM, Metric.L2)
    records = make_records(23)
    records.append(Record(id="text-id", vector=records[0].vector, version=1))
    backend.upsert(records)

    batches = list(backend.iter_ids(batch_size=5))

    assert all(1 <= len(batch) <= 5 for batch in batches)
    ids = [i for batch in batches for i in batch]
    assert len(ids) == 24
    assert set(ids) == {*range(23), "text-id"}


# --- search -----------------------------------------------------------------------------


@pytest.mark.parametrize("metric", list(Metric))
def test_search_matches_exact_scores(make_backend, metric):
    backend = make_backend(DIM, metric)
    records = make_records(200)
    backend.upsert(records)
    queries = np.random.default_rng(11).standard_normal((4, DIM)).astype(np.float32)

    results = backend.search(queries, 10)

    expected = exact_scores(records, queries, metric)
    assert len(results) == 4
    for row, hits in enumerate(results):
        best = np.argsort(-expected[row], kind="stable")[:10]
        assert hit_ids(hits) == [int(i) for i in best]
        got = np.array([h.score for h in hits])
        np.testing.assert_allclose(got, expected[row][best], rtol=SCORE_TOLERANCE, atol=1e-3)
        assert all(h.tier == "hot" for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_search_l2_exact_match_scores_zero(make_backend):
    backend = make_backend(DIM, Metric.L2)
    records = make_records(10)
    backend.upsert(records)

    [hits] = backend.search(records[4].vector.reshape(1, -1), 3)

    assert hits[0].id == 4
    assert hits[0].score == pytest.approx(0.0, abs=1e-3)
    assert hits[1].score < 0


def test_search_returns_payload_and_version(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    records = make_records(6, version=4)
    backend.upsert(records)

    [hits] = backend.search(records[0].vector.reshape(1, -1), 1)

    assert hits[0].id == 0
    assert hits[0].version == 4
    assert dict(hits[0].payload) == PAYLOADS[0]


def test_search_empty_collection(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    queries = np.ones((2, DIM), np.float32)
    assert backend.search(queries, 5) == [[], []]


def test_search_k_larger_than_collection(make_backend):
    backend = make_backend(DIM, Metric.DOT)
    backend.upsert(make_records(3))
    [hits] = backend.search(np.ones((1, DIM), np.float32), 50)
    assert sorted(hit_ids(hits)) == [0, 1, 2]


# --- filters ----------------------------------------------------------------------------

FILTER_CASES: list[tuple[str, Filter | dict[str, Any]]] = [
    ("eq_string", Eq("lang", "en")),
    ("eq_int", Eq("year", 2020)),
    ("eq_float", Eq("rating", 2.5)),
    ("eq_bool", Eq("public", True)),
    ("eq_list_member", Eq("tags", "tech")),
    ("in_strings", In("lang", ("de", "fr"))),
    ("in_ints", In("year", (2019, 2023, 1999))),
    ("in_list_member", In("tags", ("sport", "nothing"))),
    ("range_closed", Range("year", gte=2020, lte=2022)),
    ("range_open", Range("rating", gt=3.0)),
    ("range_lt", Range("year", lt=2021)),
    ("and", And((Eq("lang", "en"), Range("year", gt=2019)))),
    ("or", Or((Eq("lang", "fr"), Range("rating", gte=5.0)))),
    ("not_eq_missing_field", Not(Eq("lang", "en"))),
    ("not_in", Not(In("year", (2019, 2020)))),
    ("not_range", Not(Range("year", gte=2021))),
    ("not_and", Not(And((Eq("lang", "de"), Eq("year", 2020))))),
    ("not_or", Not(Or((Eq("lang", "de"), Eq("lang", "fr"))))),
    ("not_not", Not(Not(Eq("lang", "de")))),
    ("nested", Or((And((Eq("lang", "en"), Not(Eq("public", True)))), In("year", (2022,))))),
    ("dict_form", {"lang": {"$in": ["en", "de"]}, "year": {"$gte": 2020}}),
    ("dict_ne", {"lang": {"$ne": "de"}}),
    ("missing_field", Eq("nonexistent", "x")),
    ("matches_nothing", Eq("lang", "xx")),
]


@pytest.mark.parametrize(("case", "spec"), FILTER_CASES, ids=[c for c, _ in FILTER_CASES])
def test_search_filter_matches_python(make_backend, case, spec):
    backend = make_backend(DIM, Metric.L2)
    records = make_records(24)
    backend.upsert(records)
    node = parse_filter(spec)
    assert node is not None

    [hits] = backend.search(np.zeros((1, DIM), np.float32), 100, node)

    expected = {r.id for r in records if matches(node, r.payload)}
    assert set(hit_ids(hits)) == expected, case
    assert len(hits) == len(expected)


def test_search_filter_respects_k(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    records = make_records(30)
    backend.upsert(records)
    node = Eq("lang", "de")

    [hits] = backend.search(records[1].vector.reshape(1, -1), 3, node)

    assert len(hits) == 3
    assert hits[0].id == 1
    assert all(h.payload.get("lang") == "de" for h in hits)


# --- ids --------------------------------------------------------------------------------


def test_int_and_string_ids_are_distinct(make_backend):
    backend = make_backend(DIM, Metric.L2)
    int_record = Record(id=5, vector=np.zeros(DIM, np.float32), payload={"kind": "int"}, version=1)
    str_record = Record(id="5", vector=np.ones(DIM, np.float32), payload={"kind": "str"}, version=2)
    backend.upsert([int_record, str_record])

    assert backend.count() == 2
    fetched = {r.id: r for r in backend.fetch([5, "5"])}
    assert set(fetched) == {5, "5"}
    assert isinstance(next(i for i in fetched if i == 5), int)
    assert fetched[5].payload["kind"] == "int"
    assert fetched["5"].payload["kind"] == "str"
    assert fetched["5"].version == 2

    [hits] = backend.search(np.zeros((1, DIM), np.float32), 2)
    assert hits[0].id == 5
    assert isinstance(hits[0].id, int)
    assert hits[1].id == "5"

    backend.delete(["5"])
    assert [r.id for r in backend.fetch([5, "5"])] == [5]


@pytest.mark.parametrize(
    "record_id",
    [0, 1, 2**63 - 1, "doc-1", "ünïcödé/路径 with spaces", "a" * 512, "0", "i:5", "s:x"],
)
def test_id_round_trip(make_backend, record_id):
    backend = make_backend(DIM, Metric.COSINE)
    backend.upsert([Record(id=record_id, vector=np.ones(DIM, np.float32), version=3)])

    [fetched] = backend.fetch([record_id])
    [hits] = backend.search(np.ones((1, DIM), np.float32), 1)

    assert fetched.id == record_id
    assert type(fetched.id) is type(record_id)
    assert hits[0].id == record_id
    assert [i for batch in backend.iter_ids() for i in batch] == [record_id]


# --- payloads and versions --------------------------------------------------------------


def test_payload_round_trip(make_backend):
    backend = make_backend(DIM, Metric.DOT)
    payload = {
        "text": "Grüße, 世界",
        "count": 3,
        "big": 2**53,
        "ratio": 0.125,
        "flag": False,
        "tags": ["a", "b"],
        "nested": {"inner": [1, 2, {"deep": "yes"}]},
        "empty": "",
    }
    backend.upsert([Record(id="p", vector=np.ones(DIM, np.float32), payload=payload, version=1)])

    [fetched] = backend.fetch(["p"])
    [hits] = backend.search(np.ones((1, DIM), np.float32), 1)

    assert dict(fetched.payload) == payload
    assert isinstance(fetched.payload["count"], int)
    assert isinstance(fetched.payload["ratio"], float)
    assert dict(hits[0].payload) == payload


def test_empty_payload_round_trip(make_backend):
    backend = make_backend(DIM, Metric.DOT)
    backend.upsert([Record(id=1, vector=np.ones(DIM, np.float32), version=1)])
    [fetched] = backend.fetch([1])
    assert dict(fetched.payload) == {}


def test_version_round_trip(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    versions = [1, 2, 10**12, 2**62]
    records = [
        Record(id=f"v{i}", vector=np.ones(DIM, np.float32) * (i + 1), version=v)
        for i, v in enumerate(versions)
    ]
    backend.upsert(records)

    fetched = backend.fetch([r.id for r in records])

    assert [r.version for r in fetched] == versions


# --- scale ------------------------------------------------------------------------------


@pytest.mark.slow
def test_batch_of_ten_thousand(make_backend):
    backend = make_backend(8, Metric.L2)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((10_000, 8)).astype(np.float32)
    records = [
        Record(id=i if i % 2 else f"s{i}", vector=vectors[i], payload={"n": i}, version=1)
        for i in range(10_000)
    ]

    backend.upsert(records)

    assert backend.count() == 10_000
    ids = [i for batch in backend.iter_ids(batch_size=3000) for i in batch]
    assert len(ids) == 10_000
    assert set(ids) == {r.id for r in records}
    sample = [records[j].id for j in (0, 1, 4999, 9998, 9999)]
    assert [r.id for r in backend.fetch(sample)] == sample
    [hits] = backend.search(vectors[1234].reshape(1, -1), 5)
    assert hits[0].id == "s1234"

    backend.delete([r.id for r in records])
    assert backend.count() == 0


# --- concurrency and lifecycle ----------------------------------------------------------


def test_concurrent_searches_match_serial(make_backend):
    backend = make_backend(DIM, Metric.COSINE)
    backend.upsert(make_records(100))
    queries = np.random.default_rng(3).standard_normal((8, DIM)).astype(np.float32)
    serial = [hit_ids(backend.search(q.reshape(1, -1), 5)[0]) for q in queries]

    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(lambda q: hit_ids(backend.search(q.reshape(1, -1), 5)[0]), queries))

    assert parallel == serial


def test_close_is_idempotent(make_backend):
    backend = make_backend(DIM, Metric.DOT)
    backend.upsert(make_records(2))
    backend.close()
    backend.close()
