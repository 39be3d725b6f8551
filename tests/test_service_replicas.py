"""Two sidecar replicas sharing a backend, a cold folder and a real redis-server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import closed_port
from fastapi.testclient import TestClient
from test_service import DIM, metric_value, settings_for, upsert_rows, wait_for
from tiering_fixtures import StepClock, fast_config, make_backend

from tiering.records import Metric
from tiering.service.app import create_app
from tiering.store import TieredStore


class Replicas:
    """Opens sidecar apps over one backend, one cold folder, one clock and one Redis prefix."""

    def __init__(self, tmp_path: Path, redis_url: str, prefix: str, stack: contextlib.ExitStack):
        self.tmp_path = tmp_path
        self.redis_url = redis_url
        self.prefix = prefix
        self.stack = stack
        self.backend = make_backend("memory", DIM, Metric.L2)
        self.clock = StepClock()

    def open(self, name: str, **overrides: Any) -> TestClient:
        store = TieredStore(
            self.backend, self.tmp_path / "cold", config=fast_config(), clock=self.clock, close_backend=False
        )
        values: dict[str, Any] = {
            "redis_url": self.redis_url,
            "redis_prefix": self.prefix,
            "replica_id": name,
            "sync_interval_s": 30.0,
            "lease_ttl_s": 60.0,
        }
        values.update(overrides)
        app = create_app(settings_for(self.tmp_path, **values), store=store)
        return self.stack.enter_context(TestClient(app))


@pytest.fixture
def replicas(tmp_path, redis_server, redis_prefix) -> Iterator[Replicas]:
    with contextlib.ExitStack() as stack:
        yield Replicas(tmp_path, redis_server.url, redis_prefix, stack)


def runtime_of(client: TestClient) -> Any:
    return client.app.state.runtime  # type: ignore[attr-defined]


def test_only_lease_holder_tiers(replicas):
    first = replicas.open("replica-a")
    second = replicas.open("replica-b")
    upsert_rows(first, 20)

    tiered = first.post("/v1/tier", json={})
    rejected = second.post("/v1/tier", json={})
    planned = second.post("/v1/tier", json={"dry_run": True})

    assert tiered.status_code == 200
    assert tiered.json()["demoted"] == 16
    assert rejected.status_code == 409
    assert "is taken by replica replica-a" in rejected.json()["message"]
    assert planned.status_code == 200
    assert first.get("/v1/status").json()["lease"]["held"] is True
    assert second.get("/v1/status").json()["lease"]["held"] is False


def test_hits_on_one_replica_promote_on_leader(replicas):
    leader = replicas.open("replica-a")
    follower = replicas.open("replica-b")
    vectors = upsert_rows(leader, 20)
    demoted = leader.post("/v1/tier", json={}).json()["plan"]["demote"]
    runtime_of(follower).sync_scores()
    popular = demoted[:2]

    for _ in range(3):
        follower.post("/v1/search", json={"vectors": [vectors[i] for i in popular], "k": 1, "cold": "always"})
    runtime_of(follower).sync_scores()
    plan = leader.post("/v1/tier", json={"dry_run": True}).json()["plan"]

    assert sorted(plan["promote"]) == sorted(popular)
    assert metric_value(follower, "tiering_score_syncs_total", result="ok") == 2.0


def test_follower_sees_leader_segments(replicas):
    leader = replicas.open("replica-a")
    follower = replicas.open("replica-b")
    vectors = upsert_rows(leader, 20)
    demoted = leader.post("/v1/tier", json={}).json()["plan"]["demote"]

    runtime_of(follower).sync_scores()
    hits = follower.post("/v1/search", json={"vector": vectors[demoted[0]], "k": 1}).json()["hits"]

    assert hits[0]["id"] == demoted[0]
    assert hits[0]["tier"] == "cold"


def test_loop_tiers_on_one_replica_then_fails_over(replicas):
    first = replicas.open("replica-a", interval_s=0.05)
    second = replicas.open("replica-b", interval_s=0.05)
    upsert_rows(first, 20)

    first_tiered = wait_for(lambda: metric_value(first, "tiering_demoted_vectors_total") == 16)
    time.sleep(0.3)
    second_ok = metric_value(second, "tiering_passes_total", result="ok")
    second_skipped = metric_value(second, "tiering_passes_total", result="skipped")
    runtime_of(first).stop()
    took_over = wait_for(lambda: metric_value(second, "tiering_passes_total", result="ok") >= 1)

    assert first_tiered
    assert second_ok == 0.0
    assert second_skipped >= 1.0
    assert took_over
    assert second.get("/v1/status").json()["lease"]["held"] is True


def test_redis_down_degrades_without_hanging(tmp_path, redis_prefix, caplog):
    caplog.set_level(logging.WARNING, logger="tiering")
    store = TieredStore(make_backend("memory", DIM, Metric.L2), tmp_path / "cold", config=fast_config())
    down_url = f"redis://127.0.0.1:{closed_port()}/0"
    settings = settings_for(tmp_path, redis_url=down_url, redis_prefix=redis_prefix, redis_timeout_s=0.2)
    with TestClient(create_app(settings, store=store)) as degraded:
        started = time.monotonic()
        vectors = upsert_rows(degraded, 20)
        search = degraded.post("/v1/search", json={"vector": vectors[0], "k": 1})
        tier = degraded.post("/v1/tier", json={})
        runtime_of(degraded).sync_scores()
        runtime_of(degraded).sync_scores()
        elapsed_s = time.monotonic() - started
        failed_syncs = metric_value(degraded, "tiering_score_syncs_total", result="failed")
        pending = degraded.get("/v1/status").json()["access_tracker"]["pending_ids"]

    assert search.status_code == 200
    assert tier.status_code == 503
    assert tier.json()["error"] == "SharedScoresError"
    assert "never tier at once" in tier.json()["message"]
    assert failed_syncs == 2.0
    assert pending == 20
    assert elapsed_s < 10.0
    assert len([r for r in caplog.records if r.getMessage().startswith("Degraded (flush")]) == 1
