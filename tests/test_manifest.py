"""Manifest versions: atomic creation, conflicts, rebase, corruption."""

from __future__ import annotations

import pytest

from tiering.errors import ConfigurationError, CorruptDataError, ManifestConflictError
from tiering.manifest import Manifest, ManifestLog, manifest_key
from tiering.objectstore import LocalFolderStore
from tiering.records import Metric


@pytest.fixture
def log(tmp_path):
    return ManifestLog(LocalFolderStore(tmp_path), dim=4, metric=Metric.L2)


def test_empty_log_starts_at_zero(log):
    assert log.latest().version == 0
    assert log.versions() == []


def test_commit_numbers_rows_and_versions(log):
    first = log.commit(lambda m: m.with_segment("segments/a.parquet", 3, 100, "aa"))
    second = log.commit(lambda m: m.with_segment("segments/b.parquet", 2, 80, "bb"))

    assert (first.version, second.version) == (1, 2)
    assert [s.first_row_id for s in second.segments] == [0, 3]
    assert second.next_row_id == 5
    assert log.versions() == [1, 2]
    assert log.latest() == second


def test_loser_rebases_onto_winner(log):
    calls = []

    def change(base: Manifest) -> Manifest:
        calls.append(base.version)
        if len(calls) == 1:
            # Another writer commits version 1 between our read and our write.
            other = ManifestLog(log.store, 4, Metric.L2)
            other.commit(lambda m: m.with_segment("segments/other.parquet", 4, 10, "oo"))
        return base.with_segment("segments/mine.parquet", 2, 10, "mm")

    committed = log.commit(change)

    assert calls == [0, 1]
    assert committed.version == 2
    assert [s.key for s in committed.segments] == ["segments/other.parquet", "segments/mine.parquet"]
    assert committed.segments[1].first_row_id == 4


def test_conflicts_end_after_bounded_retries(log):
    def always_loses(base: Manifest) -> Manifest:
        ManifestLog(log.store, 4, Metric.L2).commit(lambda m: m.with_tombstones([]))
        return base.with_tombstones([])

    with pytest.raises(ManifestConflictError, match="3 attempts"):
        log.commit(always_loses, max_attempts=3)


def test_no_change_writes_nothing(log):
    log.commit(lambda m: m.with_segment("segments/a.parquet", 1, 1, "a"))

    assert log.commit(lambda m: None).version == 1
    assert log.versions() == [1]


def test_tombstoning_a_whole_segment_drops_it(log):
    log.commit(lambda m: m.with_segment("segments/a.parquet", 2, 1, "a"))
    log.commit(lambda m: m.with_segment("segments/b.parquet", 2, 1, "b"))

    manifest = log.commit(lambda m: m.with_tombstones([0, 1, 2, 99]))

    assert [s.key for s in manifest.segments] == ["segments/b.parquet"]
    assert manifest.tombstones == frozenset({2})
    assert manifest.live_rows() == 1


def test_corrupt_latest_is_reported(log, tmp_path):
    log.commit(lambda m: m.with_segment("segments/a.parquet", 1, 1, "a"))
    (tmp_path / manifest_key(1)).write_text('{"format": "tiering-manifest-1", "version": 1')

    with pytest.raises(CorruptDataError, match=r"v00000000000000000001\.json"):
        log.latest()


def test_dimension_mismatch_is_reported(log):
    log.commit(lambda m: m.with_segment("segments/a.parquet", 1, 1, "a"))

    with pytest.raises(ConfigurationError, match="4-d l2"):
        ManifestLog(log.store, dim=8, metric=Metric.L2).latest()


def test_json_roundtrip(log):
    manifest = log.commit(lambda m: m.with_segment("segments/a.parquet", 3, 7, "a").with_tombstones([1]))

    assert Manifest.from_json(manifest.to_json(), "k") == manifest
