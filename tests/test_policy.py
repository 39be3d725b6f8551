"""The tiering policy: budgets, idle time, hysteresis and cooldown."""

from __future__ import annotations

import pytest

from tiering.access import AccessTracker
from tiering.errors import ConfigurationError
from tiering.policy import HotBudget, PolicyConfig, make_plan


def plan_for(hot, cold, tracker, now_s=1000.0, **settings):
    return make_plan(hot, cold, tracker, now_s, PolicyConfig(**settings), dim=4)


def test_budget_takes_smallest_limit():
    budget = HotBudget(max_count=50, max_fraction=0.3, max_bytes=16 * 40)

    assert budget.limit(100, bytes_per_vector=16) == 30
    assert budget.limit(1000, bytes_per_vector=16) == 40
    assert HotBudget(max_count=50).limit(20, 16) == 20


@pytest.mark.parametrize("kwargs", [{"max_count": -1}, {"max_fraction": 1.5}, {"max_bytes": -5}])
def test_budget_rejects_invalid(kwargs):
    with pytest.raises(ConfigurationError):
        HotBudget(**kwargs)


def test_demotes_lowest_scores_first():
    tracker = AccessTracker(half_life_s=1e9)
    hot = list(range(10))
    tracker.register(hot, now_s=0.0)
    for n in hot:
        tracker.record([n] * n, now_s=0.0)

    plan = plan_for(hot, [], tracker, budget=HotBudget(max_count=6), min_idle_s=0)

    assert plan.demote == (0, 1, 2, 3)
    assert plan.hot_count_after == 6


def test_recent_ids_are_not_demoted():
    tracker = AccessTracker(half_life_s=1e9)
    tracker.register([1, 2, 3], now_s=0.0)
    tracker.record([3], now_s=990.0)

    plan = plan_for([1, 2, 3], [], tracker, budget=HotBudget(max_count=0), min_idle_s=60)

    assert set(plan.demote) == {1, 2}
    assert plan.shortfall == 1


def test_promotion_needs_threshold_and_room():
    tracker = AccessTracker(half_life_s=1e9)
    tracker.register([1, 2], now_s=0.0)
    tracker.record(["warm"] * 2 + ["hot"] * 5, now_s=0.0)

    plan = plan_for(
        [1, 2],
        ["warm", "hot"],
        tracker,
        budget=HotBudget(max_count=3),
        min_idle_s=0,
        cooldown_s=0,
        promote_score=3.0,
    )

    assert plan.promote == ("hot",)
    assert plan.demote == ()


def test_promotion_swaps_only_with_much_colder():
    tracker = AccessTracker(half_life_s=1e9)
    tracker.register(["cool", "lukewarm"], now_s=0.0)
    tracker.record(["lukewarm"] * 4 + ["hot"] * 6, now_s=0.0)

    plan = plan_for(
        ["cool", "lukewarm"],
        ["hot"],
        tracker,
        budget=HotBudget(max_count=2),
        min_idle_s=0,
        cooldown_s=0,
        promote_score=3.0,
        hysteresis=0.5,
    )
    assert plan.promote == ("hot",)
    assert plan.demote == ("cool",)

    tracker.record(["cool"] * 4, now_s=0.0)
    plan = plan_for(
        ["cool", "lukewarm"],
        ["hot"],
        tracker,
        budget=HotBudget(max_count=2),
        min_idle_s=0,
        cooldown_s=0,
        promote_score=3.0,
        hysteresis=0.5,
    )
    assert plan.is_empty()


def test_cooldown_blocks_bounce():
    tracker = AccessTracker(half_life_s=1e9)
    tracker.record(["back"] * 10, now_s=0.0)
    tracker.mark_moved(["back"], now_s=900.0)

    plan = plan_for([], ["back"], tracker, budget=HotBudget(max_count=5), cooldown_s=300)

    assert plan.promote == ()


def test_max_moves_per_pass():
    tracker = AccessTracker(half_life_s=1e9)
    tracker.register(list(range(100)), now_s=0.0)

    plan = plan_for(
        list(range(100)), [], tracker, budget=HotBudget(max_count=0), min_idle_s=0, max_moves_per_pass=30
    )

    assert len(plan.demote) == 30


def test_invalid_policy_settings():
    with pytest.raises(ConfigurationError, match="hysteresis"):
        PolicyConfig(hysteresis=0)
    with pytest.raises(ConfigurationError, match="promote_score"):
        PolicyConfig(promote_score=-1)
