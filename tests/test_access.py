"""AccessTracker: decay, counting, persistence."""

from __future__ import annotations

import pytest

from tiering.access import AccessTracker
from tiering.errors import ConfigurationError, CorruptDataError


def test_score_halves_each_half_life():
    tracker = AccessTracker(half_life_s=100.0)
    tracker.record(["a"], now_s=0.0)

    scores_at = [tracker.snapshot(["a"], now_s=t)[0][0] for t in (0.0, 100.0, 200.0, 50.0 + 250.0)]

    assert scores_at[0] == pytest.approx(1.0)
    assert scores_at[1] == pytest.approx(0.5)
    assert scores_at[2] == pytest.approx(0.25)
    assert scores_at[3] == pytest.approx(0.125)


def test_repeated_ids_count_each_time():
    tracker = AccessTracker(half_life_s=10.0)
    tracker.record([1, 1, 2], now_s=5.0)
    tracker.record([1], now_s=15.0)

    scores, idle_s, _ = tracker.snapshot([1, 2], now_s=15.0)

    assert scores[0] == pytest.approx(2 * 0.5 + 1)
    assert scores[1] == pytest.approx(0.5)
    assert list(idle_s) == [0.0, 10.0]


def test_register_keeps_existing_scores():
    tracker = AccessTracker(half_life_s=10.0)
    tracker.record(["x"], now_s=0.0)
    tracker.register(["x", "y"], now_s=0.0)

    scores, idle_s, since_move_s = tracker.snapshot(["x", "y"], now_s=0.0)

    assert list(scores) == [1.0, 0.0]
    assert list(idle_s) == [0.0, 0.0]
    assert all(since_move_s == float("inf"))


def test_long_runs_do_not_overflow():
    tracker = AccessTracker(half_life_s=1.0)
    for step in range(0, 5000, 100):
        tracker.record(["hot"], now_s=float(step))

    scores, _, _ = tracker.snapshot(["hot"], now_s=4900.0)

    assert scores[0] == pytest.approx(1.0, rel=1e-9)


def test_forget_and_reuse_slots():
    tracker = AccessTracker(half_life_s=10.0, capacity=2)
    tracker.record([1, 2, 3], now_s=0.0)
    tracker.forget([2])
    tracker.record([4], now_s=0.0)

    assert sorted(tracker.ids()) == [1, 3, 4]
    assert 2 not in tracker


def test_roundtrip_keeps_types_and_scores():
    tracker = AccessTracker(half_life_s=60.0)
    tracker.record([7, "7", "doc"], now_s=30.0)
    tracker.mark_moved(["doc"], now_s=40.0)

    restored = AccessTracker.from_bytes(tracker.to_bytes(), half_life_s=60.0)

    assert sorted(restored.ids(), key=str) == sorted([7, "7", "doc"], key=str)
    before = tracker.snapshot([7, "7", "doc"], now_s=90.0)
    after = restored.snapshot([7, "7", "doc"], now_s=90.0)
    for left, right in zip(before, after, strict=True):
        assert list(left) == pytest.approx(list(right))


def test_corrupt_state_is_reported():
    with pytest.raises(CorruptDataError, match="unreadable"):
        AccessTracker.from_bytes(b"not an npz archive", half_life_s=1.0)


def test_invalid_half_life():
    with pytest.raises(ConfigurationError, match="half_life_s"):
        AccessTracker(half_life_s=0)


def test_memory_per_id_is_bounded():
    tracker = AccessTracker(half_life_s=60.0)
    tracker.record(list(range(100_000)), now_s=0.0)

    bytes_per_id = tracker.memory_bytes() / len(tracker)

    assert 24 <= bytes_per_id <= 200
