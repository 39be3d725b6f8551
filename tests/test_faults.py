"""A failure at each step of a demotion or promotion, then a reopen, loses nothing.

The fault hook raises at the named step, which leaves the backend and the object
store exactly as a process killed there would (the in-memory state of the failed
store is dropped, never closed). A new TieredStore on the same backend and folder
must then find every record once, with its latest version.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiering_fixtures import random_vectors

from tiering.coldindex import INDEX_KEY, INDEX_META_KEY
from tiering.errors import CorruptDataError
from tiering.manifest import manifest_key
from tiering.mover import DEMOTE_STEPS, PROMOTE_STEPS

N = 60


class SimulatedCrash(Exception):
    """Raised by the fault hook in place of a kill."""


def crash_at(step: str):
    def hook(name: str) -> None:
        if name == step:
            raise SimulatedCrash(step)

    return hook


def assert_intact(store, vectors, payloads, deleted=()):
    live = [i for i in range(N) if i not in deleted]
    records = store.get(list(range(N)))
    assert [r.id for r in records] == live
    for record in records:
        assert record.payload == payloads[record.id]
        assert np.allclose(record.vector, vectors[record.id], atol=1e-6)
    counts = store.count()
    assert counts.total == len(live)
    assert not set(store.cold.ids()) & set(i for batch in store.backend.iter_ids() for i in batch), (
        "an id is in both tiers after recovery"
    )
    for query in vectors[:10]:
        hits = store.search(query, k=N, track=False)
        ids = [h.id for h in hits]
        assert len(ids) == len(set(ids))
        assert not set(ids) & set(deleted)


def fill(store):
    vectors = random_vectors(N, 8)
    payloads = {n: {"n": n} for n in range(N)}
    store.upsert(list(range(N)), vectors, [payloads[n] for n in range(N)])
    return vectors, payloads


@pytest.mark.parametrize("step", DEMOTE_STEPS)
def test_demotion_crash_recovers(store_factory, step):
    factory = store_factory()
    vectors, payloads = fill(factory.open())

    crashing = factory.open(fault_hook=crash_at(step))
    with pytest.raises(SimulatedCrash):
        crashing.tier()

    reopened = factory.open()
    assert reopened.mover.pending() == []
    assert_intact(reopened, vectors, payloads)
    result = reopened.tier()
    assert reopened.count().hot == 12
    assert result.demoted + (N - 12 - result.demoted) == reopened.count().cold
    assert_intact(reopened, vectors, payloads)


@pytest.mark.parametrize("step", PROMOTE_STEPS)
def test_promotion_crash_recovers(store_factory, step):
    factory = store_factory()
    store = factory.open()
    vectors, payloads = fill(store)
    store.tier()
    cold_ids = store.cold.ids()[:5]
    for record_id in cold_ids:
        for _ in range(5):
            store.search(vectors[record_id], k=1)
    store.close()

    crashing = factory.open(fault_hook=crash_at(step))
    with pytest.raises(SimulatedCrash):
        crashing.tier()

    reopened = factory.open()
    assert reopened.mover.pending() == []
    assert_intact(reopened, vectors, payloads)
    reopened.tier()
    assert all(record_id not in reopened.cold for record_id in cold_ids)
    assert_intact(reopened, vectors, payloads)


@pytest.mark.parametrize("step", ["backend_written", "manifest_committed"])
def test_overwrite_of_cold_id_survives_crash(store_factory, step):
    factory = store_factory()
    store = factory.open()
    vectors, _payloads = fill(store)
    store.tier()
    cold_id = store.cold.ids()[0]

    # A failing tombstone commit after the backend write leaves both copies behind.
    original = store.cold.commit_tombstones

    def failing_commit(ids):
        raise SimulatedCrash("tombstone")

    store.cold.commit_tombstones = failing_commit  # type: ignore[method-assign]
    with pytest.raises(SimulatedCrash):
        store.upsert([cold_id], vectors[cold_id] + 1.0, [{"n": "new"}])
    store.cold.commit_tombstones = original  # type: ignore[method-assign]

    reopened = factory.open()
    record = reopened.get([cold_id])[0]
    assert record.payload == {"n": "new"}
    assert cold_id not in reopened.cold
    hits = reopened.search(vectors[cold_id], k=N)
    assert [h.id for h in hits].count(cold_id) == 1


def test_delete_then_crash_never_resurrects(store_factory):
    factory = store_factory()
    store = factory.open()
    vectors, payloads = fill(store)
    store.tier()
    victims = [store.cold.ids()[0], next(i for i in range(N) if i not in store.cold)]

    store.delete(victims)

    reopened = factory.open()
    assert_intact(reopened, vectors, payloads, deleted=set(victims))


def test_corrupt_segment_is_reported(store_factory):
    factory = store_factory()
    store = factory.open()
    fill(store)
    store.tier()
    segment = store.cold.manifest.segments[0]
    path = factory.cold_dir / segment.key
    path.write_bytes(path.read_bytes()[:-100])
    (factory.cold_dir / INDEX_KEY).unlink()

    with pytest.raises(CorruptDataError, match=segment.key):
        factory.open()
    assert factory.backend.count() == 12


def test_corrupt_manifest_is_reported(store_factory):
    factory = store_factory()
    store = factory.open()
    fill(store)
    store.tier()
    path = factory.cold_dir / manifest_key(store.cold.manifest.version)
    path.write_bytes(path.read_bytes()[:40])

    with pytest.raises(CorruptDataError, match="Restore it from a backup"):
        factory.open()


def test_missing_segment_is_reported(store_factory):
    factory = store_factory()
    store = factory.open()
    fill(store)
    store.tier()
    segment = store.cold.manifest.segments[0]
    (factory.cold_dir / segment.key).unlink()
    (factory.cold_dir / INDEX_KEY).unlink()

    with pytest.raises(CorruptDataError, match="missing"):
        factory.open()


@pytest.mark.parametrize("damage", ["truncate", "garble", "delete", "meta"])
def test_damaged_index_is_rebuilt(store_factory, damage):
    factory = store_factory()
    store = factory.open()
    vectors, payloads = fill(store)
    store.tier()
    index_path = factory.cold_dir / INDEX_KEY
    if damage == "truncate":
        index_path.write_bytes(index_path.read_bytes()[:50])
    elif damage == "garble":
        data = bytearray(index_path.read_bytes())
        data[100:120] = b"\x00" * 20
        index_path.write_bytes(bytes(data))
    elif damage == "delete":
        index_path.unlink()
    else:
        (factory.cold_dir / INDEX_META_KEY).write_text("{not json")

    reopened = factory.open()

    assert_intact(reopened, vectors, payloads)
    cold_id = reopened.cold.ids()[0]
    assert reopened.search(vectors[cold_id], k=1)[0].id == cold_id
