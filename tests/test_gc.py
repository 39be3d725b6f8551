"""Garbage collection keeps every segment a kept manifest uses and removes the rest."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from servers import S3Endpoint, moto_control, moto_server  # noqa: F401  (fixtures)

from tiering.adapters.memory import InMemoryBackend
from tiering.coldtier import ColdTier
from tiering.errors import ConfigurationError, CorruptDataError, ObjectNotFoundError
from tiering.gc import collect_garbage
from tiering.manifest import ManifestLog, manifest_key
from tiering.objectstore import LocalFolderStore, ObjectStore
from tiering.records import Metric, Record
from tiering.s3store import S3ObjectStore
from tiering.store import TieredStore

DIM = 4
LATER_S = 10 * 24 * 3600.0


@pytest.fixture(params=["local", "moto"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalFolderStore(tmp_path / "cold")
    endpoint: S3Endpoint = request.getfixturevalue("moto_server")
    return S3ObjectStore(endpoint.config(endpoint.new_bucket()))


def records(ids: range) -> list[Record]:
    vectors = np.random.default_rng(ids.start).random((len(ids), DIM), dtype=np.float32)
    return [Record(i, vectors[n], {"n": i}, version=1) for n, i in enumerate(ids)]


def demote(cold: ColdTier, ids: range) -> str:
    staged = cold.stage_segment(records(ids))
    cold.commit_segment(staged)
    return staged.key


def segment_keys(store: ObjectStore) -> set[str]:
    return {info.key for info in store.list("segments/")}


def test_dropped_segment_collected(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    first = demote(cold, range(0, 10))
    second = demote(cold, range(10, 20))
    cold.commit_tombstones(range(0, 10))  # every row of the first segment: it is dropped

    report = collect_garbage(store, keep_versions=1, grace_period_s=60, now_s=time.time() + LATER_S)

    assert report.deleted_segments == (first,)
    assert segment_keys(store) == {second}
    assert report.kept_versions == (3,)
    assert [info.key for info in store.list("manifests/")] == [manifest_key(3)]
    reopened = ColdTier(store, DIM, Metric.L2)
    assert sorted(reopened.ids()) == list(range(10, 20))
    assert len(reopened.fetch(range(10, 20))) == 10


def test_kept_versions_protect_segments(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    first = demote(cold, range(0, 10))
    demote(cold, range(10, 20))
    cold.commit_tombstones(range(0, 10))

    report = collect_garbage(store, keep_versions=2, grace_period_s=60, now_s=time.time() + LATER_S)

    assert report.deleted_segments == ()
    assert first in segment_keys(store)
    assert report.expired_manifests == (manifest_key(1),)
    old = ManifestLog(store, DIM, Metric.L2).load(2)
    assert {entry.key for entry in old.segments} <= segment_keys(store)


def test_grace_period_protects_new_segments(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    demote(cold, range(0, 10))
    in_flight = cold.stage_segment(records(range(10, 20))).key  # uploaded, not committed

    report = collect_garbage(store, keep_versions=1, grace_period_s=3600)

    assert in_flight in segment_keys(store)
    assert report.young_segments == (in_flight,)
    assert report.deleted_segments == ()

    later = collect_garbage(store, keep_versions=1, grace_period_s=3600, now_s=time.time() + LATER_S)
    assert later.deleted_segments == (in_flight,)


def test_grace_period_protects_recent_manifests(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    demote(cold, range(0, 5))
    demote(cold, range(5, 10))

    report = collect_garbage(store, keep_versions=1, grace_period_s=3600)

    assert report.expired_manifests == ()
    assert len(store.list("manifests/")) == 2


def test_journaled_segment_kept(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    demote(cold, range(0, 5))
    orphan = cold.stage_segment(records(range(5, 10))).key
    entry = {"operation": "demote", "ids": [], "segment_key": orphan}
    store.put("journal/move.json", json.dumps(entry).encode())

    report = collect_garbage(store, keep_versions=1, grace_period_s=0, now_s=time.time() + LATER_S)

    assert orphan in segment_keys(store)
    assert report.deleted_segments == ()


def test_unreadable_journal_keeps_everything(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    orphan = cold.stage_segment(records(range(5, 10))).key
    store.put("journal/broken.json", b"{not json")

    report = collect_garbage(store, keep_versions=1, grace_period_s=0, now_s=time.time() + LATER_S)

    assert report.deleted_segments == ()
    assert orphan in segment_keys(store)


def test_dry_run_deletes_nothing(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    orphan = cold.stage_segment(records(range(0, 5))).key

    report = collect_garbage(store, grace_period_s=0, now_s=time.time() + LATER_S, dry_run=True)

    assert report.deleted_segments == (orphan,)
    assert report.dry_run
    assert orphan in segment_keys(store)


def test_corrupt_kept_manifest_stops_gc(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    orphan = cold.stage_segment(records(range(0, 5))).key
    demote(cold, range(5, 10))
    store.put(manifest_key(1), b"{truncated")

    with pytest.raises(CorruptDataError):
        collect_garbage(store, grace_period_s=0, now_s=time.time() + LATER_S)

    assert orphan in segment_keys(store)


def test_newest_version_never_expired(store: ObjectStore) -> None:
    cold = ColdTier(store, DIM, Metric.L2)
    demote(cold, range(0, 5))

    collect_garbage(store, keep_versions=1, grace_period_s=0, now_s=time.time() + LATER_S)

    assert [info.key for info in store.list("manifests/")] == [manifest_key(1)]


@pytest.mark.parametrize(("keep", "grace"), [(0, 10.0), (1, -1.0)])
def test_invalid_settings(store: ObjectStore, keep: int, grace: float) -> None:
    with pytest.raises(ConfigurationError):
        collect_garbage(store, keep_versions=keep, grace_period_s=grace)


def test_store_intact_after_promotion_and_gc(tmp_path: Path) -> None:
    from tiering_fixtures import fast_config, random_vectors

    cold_store = LocalFolderStore(tmp_path / "cold")
    backend = InMemoryBackend(DIM, Metric.L2)
    vectors = random_vectors(40, DIM)
    with TieredStore(backend, cold_store, config=fast_config(0.25), close_backend=False) as store:
        store.upsert(list(range(40)), vectors)
        store.tier()
        cold_ids = store.cold.ids()
        store.upsert(cold_ids, vectors[cold_ids])  # rewrites every cold id: all segments die

    report = collect_garbage(cold_store, keep_versions=1, grace_period_s=0, now_s=time.time() + LATER_S)

    assert report.deleted_segments
    assert segment_keys(cold_store) == set()
    with TieredStore(backend, cold_store, close_backend=False) as reopened:
        records_found = reopened.get(list(range(40)))
        assert [record.id for record in records_found] == list(range(40))
        assert np.allclose(np.stack([r.vector for r in records_found]), vectors, atol=1e-6)
    with pytest.raises(ObjectNotFoundError):
        cold_store.get(report.deleted_segments[0])


def test_stale_probe_keys_removed(store: ObjectStore) -> None:
    store.put("_probe/conditional-write-left-by-a-crash", b"probe")

    young = collect_garbage(store, grace_period_s=3600)
    old = collect_garbage(store, grace_period_s=3600, now_s=time.time() + LATER_S)

    assert young.deleted_probes == ()
    assert old.deleted_probes == ("_probe/conditional-write-left-by-a-crash",)
    assert store.list("_probe/") == []
