"""The tiering policy: which ids to demote and promote to keep the hot tier in budget.

Rules, applied in one pass:

1. The hot limit is the smallest of the budget's count, fraction of all vectors, and
   bytes (vectors of ``dim`` float32 values, times ``bytes_overhead_factor``).
2. Demotion candidates are hot ids idle for at least ``min_idle_s`` and not moved in
   the last ``cooldown_s``; they go lowest score first.
3. Promotion candidates are cold ids whose score reached ``promote_score`` and that
   were not moved in the last ``cooldown_s``; they go highest score first. A candidate
   is promoted while the hot tier has room, or in exchange for a demotion candidate
   whose score is below ``hysteresis`` times its own, so a vector does not bounce.
4. While the hot tier is over its limit, more candidates are demoted.

At most ``max_moves_per_pass`` ids move in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tiering.access import AccessTracker
from tiering.errors import ConfigurationError
from tiering.records import Id


@dataclass(frozen=True)
class HotBudget:
    """Limits on the hot tier; unset limits do not apply."""

    max_count: int | None = None
    max_fraction: float | None = None
    max_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.max_count is not None and self.max_count < 0:
            raise ConfigurationError(f"Invalid max_count {self.max_count}: use 0 or more.")
        if self.max_fraction is not None and not 0.0 <= self.max_fraction <= 1.0:
            raise ConfigurationError(f"Invalid max_fraction {self.max_fraction}: use a value from 0 to 1.")
        if self.max_bytes is not None and self.max_bytes < 0:
            raise ConfigurationError(f"Invalid max_bytes {self.max_bytes}: use 0 or more.")

    def limit(self, total_count: int, bytes_per_vector: float) -> int:
        """Return the largest hot count allowed when ``total_count`` vectors exist."""
        limits = [total_count]
        if self.max_count is not None:
            limits.append(self.max_count)
        if self.max_fraction is not None:
            limits.append(int(self.max_fraction * total_count))
        if self.max_bytes is not None:
            limits.append(int(self.max_bytes // max(bytes_per_vector, 1.0)))
        return max(0, min(limits))


@dataclass(frozen=True)
class PolicyConfig:
    """Settings of the tiering policy; times in seconds."""

    budget: HotBudget = field(default_factory=lambda: HotBudget(max_fraction=0.2))
    min_idle_s: float = 3600.0
    cooldown_s: float = 3600.0
    promote_score: float = 3.0
    hysteresis: float = 0.5
    max_moves_per_pass: int = 100_000
    bytes_overhead_factor: float = 1.5

    def __post_init__(self) -> None:
        if not 0.0 < self.hysteresis <= 1.0:
            raise ConfigurationError(f"Invalid hysteresis {self.hysteresis}: use (0, 1].")
        if self.promote_score <= 0:
            raise ConfigurationError(f"Invalid promote_score {self.promote_score}: it must be positive.")
        if self.max_moves_per_pass < 1:
            raise ConfigurationError(f"Invalid max_moves_per_pass {self.max_moves_per_pass}: use 1 or more.")


@dataclass(frozen=True)
class Plan:
    """The moves one tiering pass proposes, with the counts before and after."""

    demote: tuple[Id, ...]
    promote: tuple[Id, ...]
    hot_count: int
    cold_count: int
    hot_limit: int
    bytes_per_vector: int
    shortfall: int = 0
    """How many more demotions the budget needs than idle candidates allow."""

    @property
    def hot_count_after(self) -> int:
        return self.hot_count - len(self.demote) + len(self.promote)

    @property
    def cold_count_after(self) -> int:
        return self.cold_count + len(self.demote) - len(self.promote)

    @property
    def demote_bytes(self) -> int:
        return len(self.demote) * self.bytes_per_vector

    @property
    def promote_bytes(self) -> int:
        return len(self.promote) * self.bytes_per_vector

    def is_empty(self) -> bool:
        """Return whether nothing would move."""
        return not self.demote and not self.promote


def make_plan(
    hot_ids: Sequence[Id],
    cold_ids: Sequence[Id],
    tracker: AccessTracker,
    now_s: float,
    config: PolicyConfig,
    dim: int,
) -> Plan:
    """Return the plan for one pass over the given tiers. Pure apart from registering ids."""
    bytes_per_vector = dim * 4
    hot_limit = config.budget.limit(
        len(hot_ids) + len(cold_ids), bytes_per_vector * config.bytes_overhead_factor
    )
    demote_order = _demotion_candidates(hot_ids, tracker, now_s, config)
    promote_order = _promotion_candidates(cold_ids, tracker, now_s, config)

    promote: list[Id] = []
    demote: list[Id] = []
    room = hot_limit - len(hot_ids)
    next_demotion = 0
    for candidate, score in promote_order:
        if len(promote) + len(demote) >= config.max_moves_per_pass:
            break
        if room > 0:
            promote.append(candidate)
            room -= 1
        elif next_demotion < len(demote_order) and demote_order[next_demotion][1] < config.hysteresis * score:
            promote.append(candidate)
            demote.append(demote_order[next_demotion][0])
            next_demotion += 1
        else:
            break

    while room < 0 and next_demotion < len(demote_order):
        if len(promote) + len(demote) >= config.max_moves_per_pass:
            break
        demote.append(demote_order[next_demotion][0])
        next_demotion += 1
        room += 1

    return Plan(
        demote=tuple(demote),
        promote=tuple(promote),
        hot_count=len(hot_ids),
        cold_count=len(cold_ids),
        hot_limit=hot_limit,
        bytes_per_vector=bytes_per_vector,
        shortfall=max(0, -room),
    )


def _demotion_candidates(
    hot_ids: Sequence[Id], tracker: AccessTracker, now_s: float, config: PolicyConfig
) -> list[tuple[Id, float]]:
    if not hot_ids:
        return []
    scores, idle_s, since_move_s = tracker.snapshot(hot_ids, now_s)
    eligible = np.flatnonzero((idle_s >= config.min_idle_s) & (since_move_s >= config.cooldown_s))
    order = eligible[np.argsort(scores[eligible], kind="stable")]
    return [(hot_ids[i], float(scores[i])) for i in order]


def _promotion_candidates(
    cold_ids: Sequence[Id], tracker: AccessTracker, now_s: float, config: PolicyConfig
) -> list[tuple[Id, float]]:
    if not cold_ids:
        return []
    scores, _idle_s, since_move_s = tracker.snapshot(cold_ids, now_s)
    eligible = np.flatnonzero((scores >= config.promote_score) & (since_move_s >= config.cooldown_s))
    order = eligible[np.argsort(-scores[eligible], kind="stable")]
    return [(cold_ids[i], float(scores[i])) for i in order]
