"""Random sequences of writes, deletes, searches, tiering passes and reopens keep the invariants.

A model dictionary holds what every acknowledged write says must be stored. After each
step: every live id comes back from ``get`` exactly once with its latest version and
payload, deleted ids never come back, and a search never returns an id twice.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tiering_fixtures import StepClock, fast_config, make_backend

from tiering.records import Metric
from tiering.store import TieredStore

DIM = 6
ID_POOL = [*range(12), "a", "b", "c", "d"]
ids_strategy = st.lists(st.sampled_from(ID_POOL), min_size=1, max_size=6, unique=True)


def tiering_machine(backend_name: str) -> type[RuleBasedStateMachine]:
    class TieringMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.folder = Path(tempfile.mkdtemp(prefix="tiering-invariants-"))
            self.backend = make_backend(backend_name, DIM, Metric.L2)
            self.clock = StepClock()
            self.config = fast_config(hot_fraction=0.3, promote_score=2.0)
            self.store = self._open()
            self.model: dict[object, tuple[int, dict[str, object], np.ndarray]] = {}
            self.deleted: set[object] = set()
            self.rng = np.random.default_rng(0)

        def _open(self) -> TieredStore:
            return TieredStore(
                self.backend, self.folder, config=self.config, clock=self.clock, close_backend=False
            )

        @rule(ids=ids_strategy, tag=st.integers(0, 1000))
        def upsert(self, ids: list[object], tag: int) -> None:
            vectors = self.rng.random((len(ids), DIM), dtype=np.float32)
            payloads = [{"tag": tag, "id": str(i)} for i in ids]
            versions = self.store.upsert(ids, vectors, payloads)
            for n, record_id in enumerate(ids):
                self.model[record_id] = (versions[n], payloads[n], vectors[n])
                self.deleted.discard(record_id)

        @rule(ids=ids_strategy)
        def delete(self, ids: list[object]) -> None:
            self.store.delete(ids)
            for record_id in ids:
                if self.model.pop(record_id, None) is not None:
                    self.deleted.add(record_id)

        @precondition(lambda self: self.model)
        @rule(data=st.data())
        def heat(self, data: st.DataObject) -> None:
            record_id = data.draw(st.sampled_from(sorted(self.model, key=str)))
            for _ in range(3):
                self.store.search(self.model[record_id][2], k=1)

        @rule(seconds=st.sampled_from([0.0, 30.0, 600.0]))
        def tier(self, seconds: float) -> None:
            self.clock.advance(seconds)
            self.store.tier()

        @rule()
        def reopen(self) -> None:
            self.store.close()
            self.store = self._open()

        @rule()
        def crash_and_reopen(self) -> None:
            # Dropped without close: unsaved access scores are lost, data must not be.
            self.store = self._open()

        @invariant()
        def live_ids_once_with_latest_version(self) -> None:
            records = self.store.get(ID_POOL)
            by_id = {record.id: record for record in records}
            assert len(by_id) == len(records)
            assert set(by_id) == set(self.model)
            for record_id, (version, payload, vector) in self.model.items():
                assert by_id[record_id].version == version
                assert dict(by_id[record_id].payload) == payload
                assert np.allclose(by_id[record_id].vector, vector, atol=1e-5)
            assert self.store.count().total == len(self.model)

        @invariant()
        def search_has_no_repeats_or_deleted(self) -> None:
            query = np.full(DIM, 0.5, dtype=np.float32)
            hits = self.store.search(query, k=len(ID_POOL), track=False)
            ids = [hit.id for hit in hits]
            assert len(ids) == len(set(ids))
            assert set(ids) == set(self.model)
            for hit in hits:
                assert hit.version == self.model[hit.id][0]

        def teardown(self) -> None:
            self.store.close()
            self.backend.close()
            shutil.rmtree(self.folder, ignore_errors=True)

    return TieringMachine


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["memory", "qdrant"])
def test_random_operations_keep_invariants(backend_name: str) -> None:
    machine = tiering_machine(backend_name)
    run = settings(
        max_examples=40,
        stateful_step_count=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )(machine)
    run.TestCase().runTest()
