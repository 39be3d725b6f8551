"""Fixtures that build a TieredStore over a real backend and a local cold tier folder.

``store_factory`` is parametrised over the in-process backend and qdrant-client's
local mode. It returns a function that opens a TieredStore on the same backend and
folder each time, so a test can "crash" a store and open a new one, the way a
restarted process would.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tiering.backend import Backend
from tiering.config import TieringConfig
from tiering.policy import HotBudget, PolicyConfig
from tiering.records import Metric
from tiering.store import TieredStore

TIER_BACKENDS = ["memory", "qdrant"]
_collections = itertools.count()


class StepClock:
    """A test clock that advances only when :meth:`advance` is called."""

    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


def fast_config(hot_fraction: float = 0.2, **overrides: Any) -> TieringConfig:
    """Return settings under which every idle vector may move at once."""
    policy = PolicyConfig(
        budget=HotBudget(max_fraction=hot_fraction),
        min_idle_s=0.0,
        cooldown_s=0.0,
        promote_score=overrides.pop("promote_score", 3.0),
    )
    return TieringConfig(half_life_s=overrides.pop("half_life_s", 60.0), policy=policy, **overrides)


def make_backend(name: str, dim: int, metric: Metric) -> Backend:
    """Return an empty collection in the named backend."""
    if name == "memory":
        from tiering.adapters.memory import InMemoryBackend

        return InMemoryBackend(dim, metric)
    from qdrant_client import QdrantClient

    from tiering.adapters.qdrant import QdrantBackend

    return QdrantBackend(QdrantClient(":memory:"), f"tiering_{next(_collections)}", dim, metric)


@dataclass
class StoreFactory:
    """Opens TieredStores that share one backend, one cold folder and one clock."""

    backend: Backend
    cold_dir: Path
    clock: StepClock
    config: TieringConfig
    opened: list[TieredStore]

    def open(self, **kwargs: Any) -> TieredStore:
        kwargs.setdefault("config", self.config)
        store = TieredStore(self.backend, self.cold_dir, clock=self.clock, close_backend=False, **kwargs)
        self.opened.append(store)
        return store


@pytest.fixture(params=TIER_BACKENDS)
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., StoreFactory]]:
    """Return ``build(dim=8, metric="l2", config=None)`` that creates a StoreFactory."""
    built: list[StoreFactory] = []

    def build(dim: int = 8, metric: str = "l2", config: TieringConfig | None = None) -> StoreFactory:
        factory = StoreFactory(
            backend=make_backend(request.param, dim, Metric.parse(metric)),
            cold_dir=tmp_path / f"cold{len(built)}",
            clock=StepClock(),
            config=config or fast_config(),
            opened=[],
        )
        built.append(factory)
        return factory

    yield build
    # Stores are left unclosed: a test may have abandoned one mid-move, like a crash.
    for factory in built:
        factory.backend.close()


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Return ``n`` seeded float32 vectors."""
    return np.random.default_rng(seed).random((n, dim), dtype=np.float32)
