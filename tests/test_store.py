"""TieredStore behaviour on the in-process backend and qdrant-client local mode."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tiering_fixtures import fast_config, random_vectors

from tiering.errors import FilterError, ValidationError
from tiering.records import MAX_K


def test_upsert_get_roundtrip(store_factory):
    store = store_factory().open()
    vectors = random_vectors(20, 8)
    ids = [*range(10), *(f"doc-{n}" for n in range(10))]
    versions = store.upsert(ids, vectors, [{"n": n} for n in range(20)])

    records = store.get(ids)

    assert [r.id for r in records] == ids
    assert [r.version for r in records] == versions
    assert [r.payload for r in records] == [{"n": n} for n in range(20)]
    assert np.allclose(np.stack([r.vector for r in records]), vectors, atol=1e-6)


def test_int_and_str_ids_distinct(store_factory):
    store = store_factory().open()
    store.upsert([5, "5"], random_vectors(2, 8), [{"kind": "int"}, {"kind": "str"}])

    assert [r.payload["kind"] for r in store.get([5, "5"])] == ["int", "str"]
    assert store.count().hot == 2


def test_overwrite_bumps_version(store_factory):
    store = store_factory().open()
    first = store.upsert([1], random_vectors(1, 8, seed=1), [{"v": 1}])
    second = store.upsert([1], random_vectors(1, 8, seed=2), [{"v": 2}])

    record = store.get([1])[0]
    assert second[0] > first[0]
    assert record.version == second[0]
    assert record.payload == {"v": 2}


def test_search_scores_follow_convention(store_factory):
    store = store_factory().open()
    vectors = random_vectors(50, 8)
    store.upsert(list(range(50)), vectors)

    hits = store.search(vectors[3], k=5)

    assert hits[0].id == 3
    assert hits[0].score == pytest.approx(0.0, abs=1e-4)
    expected = -np.sum((vectors - vectors[3]) ** 2, axis=1)
    for hit in hits:
        assert hit.score == pytest.approx(float(expected[hit.id]), abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_cosine_scores_are_similarities(store_factory):
    store = store_factory(metric="cosine").open()
    vectors = random_vectors(30, 8) - 0.5
    store.upsert(list(range(30)), vectors * 3.0)

    hits = store.search(vectors[0], k=3)

    assert hits[0].id == 0
    assert hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert all(-1.0 - 1e-5 <= h.score <= 1.0 + 1e-5 for h in hits)


def test_tier_moves_to_budget(store_factory):
    factory = store_factory()
    store = factory.open()
    vectors = random_vectors(100, 8)
    store.upsert(list(range(100)), vectors)

    result = store.tier()

    counts = store.count()
    assert result.demoted == 80
    assert counts.hot == 20
    assert counts.cold == 80
    assert len(store.get(list(range(100)))) == 100


def test_hits_name_their_tier(store_factory):
    store = store_factory().open()
    vectors = random_vectors(100, 8)
    store.upsert(list(range(100)), vectors)
    store.tier()
    cold_id = next(i for i in range(100) if i in store.cold)
    hot_id = next(i for i in range(100) if i not in store.cold)

    cold_hit = store.search(vectors[cold_id], k=1)[0]
    hot_hit = store.search(vectors[hot_id], k=1)[0]

    assert (cold_hit.id, cold_hit.tier) == (cold_id, "cold")
    assert (hot_hit.id, hot_hit.tier) == (hot_id, "hot")


def test_cold_modes(store_factory):
    store = store_factory().open()
    vectors = random_vectors(100, 8)
    store.upsert(list(range(100)), vectors)
    store.tier()
    cold_id = next(i for i in range(100) if i in store.cold)

    never = store.search(vectors[cold_id], k=5, cold="never")
    always = store.search(vectors[cold_id], k=5, cold="always")
    fallback_few = store.search(vectors[cold_id], k=50, cold="fallback")

    assert all(hit.tier == "hot" for hit in never)
    assert always[0].id == cold_id
    assert len(fallback_few) == 50
    assert any(hit.tier == "cold" for hit in fallback_few)


def test_upsert_of_cold_id_goes_hot(store_factory):
    store = store_factory().open()
    vectors = random_vectors(100, 8)
    store.upsert(list(range(100)), vectors)
    store.tier()
    cold_id = next(i for i in range(100) if i in store.cold)

    store.upsert([cold_id], vectors[cold_id] + 5.0, [{"fresh": True}])

    assert cold_id not in store.cold
    record = store.get([cold_id])[0]
    assert record.payload == {"fresh": True}
    hits = store.search(vectors[cold_id], k=100)
    assert [h.id for h in hits].count(cold_id) == 1


def test_delete_both_tiers(store_factory):
    store = store_factory().open()
    vectors = random_vectors(100, 8)
    store.upsert(list(range(100)), vectors)
    store.tier()
    cold_id = next(i for i in range(100) if i in store.cold)
    hot_id = next(i for i in range(100) if i not in store.cold)

    store.delete([cold_id, hot_id, 12345])

    assert store.get([cold_id, hot_id]) == []
    returned = {h.id for h in store.search(vectors[cold_id], k=100)}
    assert cold_id not in returned
    assert hot_id not in returned
    assert store.count().total == 98


def test_filters_work_in_both_tiers(store_factory):
    store = store_factory().open()
    vectors = random_vectors(100, 8)
    store.upsert(list(range(100)), vectors, [{"group": n % 4, "rank": n} for n in range(100)])
    store.tier()

    hits = store.search(vectors[0], k=100, filter={"group": 1, "rank": {"$gte": 50}})

    assert {h.id for h in hits} == {n for n in range(100) if n % 4 == 1 and n >= 50}
    assert {h.tier for h in hits} == {"hot", "cold"}


def test_filter_on_missing_field(store_factory):
    store = store_factory().open()
    store.upsert([1], random_vectors(1, 8), [{"lang": "en"}])

    with pytest.raises(FilterError, match="'langauge'"):
        store.search(random_vectors(1, 8)[0], k=1, filter={"langauge": "en"})


@pytest.mark.parametrize(
    ("ids", "vectors", "message"),
    [
        ([1], np.zeros((1, 7), np.float32), "dimension 7"),
        ([1], np.array([[np.nan] * 8], np.float32), "NaN or infinite"),
        ([1], np.array([[np.inf] * 8], np.float32), "NaN or infinite"),
        ([1, 1], np.zeros((2, 8), np.float32), "Duplicate id 1"),
        ([1.5], np.zeros((1, 8), np.float32), "ids must be int or str"),
        ([-1], np.zeros((1, 8), np.float32), r"\[0, 2\*\*63\)"),
        ([""], np.zeros((1, 8), np.float32), "1 to 512 characters"),
        ([1, 2], np.zeros((1, 8), np.float32), "2 ids but 1 vectors"),
    ],
)
def test_bad_upsert_writes_nothing(store_factory, ids, vectors, message):
    store = store_factory().open()
    store.upsert([100], random_vectors(1, 8))

    with pytest.raises(ValidationError, match=message):
        store.upsert(ids, vectors)

    assert store.count().hot == 1


def test_bad_payload_writes_nothing(store_factory):
    store = store_factory().open()

    with pytest.raises(ValidationError, match="_tiering_version"):
        store.upsert([1], random_vectors(1, 8), [{"_tiering_version": 3}])
    with pytest.raises(ValidationError, match="JSON"):
        store.upsert([1], random_vectors(1, 8), [{"when": object()}])
    with pytest.raises(ValidationError, match="JSON"):
        store.upsert([1], random_vectors(1, 8), [{"x": math.nan}])

    assert store.count().hot == 0


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1, 2.5, True, "10"])
def test_k_out_of_range(store_factory, k):
    store = store_factory().open()
    store.upsert([1], random_vectors(1, 8))

    with pytest.raises(ValidationError, match=f"from 1 to {MAX_K}"):
        store.search(random_vectors(1, 8)[0], k=k)


def test_query_validation(store_factory):
    store = store_factory().open()

    with pytest.raises(ValidationError, match="query dimension 3"):
        store.search([0.0, 1.0, 2.0], k=1)
    with pytest.raises(ValidationError, match="NaN"):
        store.search([math.nan] * 8, k=1)


def test_batch_search_shape(store_factory):
    store = store_factory().open()
    vectors = random_vectors(30, 8)
    store.upsert(list(range(30)), vectors)

    results = store.search(vectors[:4], k=3)

    assert len(results) == 4
    assert [hits[0].id for hits in results] == [0, 1, 2, 3]


def test_empty_store_search(store_factory):
    store = store_factory().open()

    assert store.search(random_vectors(1, 8)[0], k=5) == []
    assert store.get([1, "x"]) == []


def test_closed_store_rejects_calls(store_factory):
    factory = store_factory()
    with factory.open() as store:
        store.upsert([1], random_vectors(1, 8))

    with pytest.raises(ValidationError, match="closed"):
        store.search(random_vectors(1, 8)[0], k=1)


def test_dry_run_changes_nothing(store_factory):
    store = store_factory().open()
    store.upsert(list(range(50)), random_vectors(50, 8))

    result = store.tier(dry_run=True)

    assert result.dry_run
    assert len(result.plan.demote) == 40
    assert result.plan.demote_bytes == 40 * 8 * 4
    assert result.demoted == 0
    assert store.count().hot == 50


def test_reopen_keeps_scores_and_tiers(store_factory):
    factory = store_factory(config=fast_config(promote_score=100.0))
    store = factory.open()
    vectors = random_vectors(50, 8)
    store.upsert(list(range(50)), vectors)
    for _ in range(5):
        store.search(vectors[7], k=1)
    store.tier()
    cold_before = set(store.cold.ids())
    store.close()

    reopened = factory.open()

    assert set(reopened.cold.ids()) == cold_before
    scores, _idle, _moved = reopened.tracker.snapshot([7], factory.clock())
    assert scores[0] == pytest.approx(5.0)
    assert 7 not in reopened.cold


def test_dry_run_estimates_saving(store_factory):
    # Self-hosted Qdrant prices hot vectors at 1.5x their raw size in RAM, while the cold
    # tier holds them once in RAM plus S3, so demoting must save money.
    store = store_factory(config=fast_config(price_model="qdrant-ram")).open()
    store.upsert(list(range(50)), random_vectors(50, 8))

    demoting = store.tier(dry_run=True)
    store.tier()
    idle = store.tier(dry_run=True)

    assert demoting.saving_usd_per_month > 0.0
    assert idle.plan.is_empty()
    assert idle.saving_usd_per_month == 0.0
