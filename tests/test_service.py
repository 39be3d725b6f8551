"""The sidecar's HTTP API through FastAPI's TestClient, over real stores and a local cold folder."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tiering_fixtures import StepClock, fast_config, make_backend, random_vectors

from tiering.errors import ConfigurationError, ObjectStoreError
from tiering.records import MAX_K, Metric
from tiering.service.app import create_app
from tiering.service.settings import ServiceSettings
from tiering.store import TieredStore

DIM = 8


def settings_for(tmp_path: Path, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "backend": "memory",
        "dim": DIM,
        "metric": "l2",
        "cold_dir": str(tmp_path / "cold"),
        "interval_s": 0.0,
        "replica_id": "replica-test",
    }
    values.update(overrides)
    return ServiceSettings(**values)


def open_test_store(tmp_path: Path, backend_name: str = "memory", **kwargs: Any) -> TieredStore:
    backend = make_backend(backend_name, DIM, Metric.L2)
    kwargs.setdefault("config", fast_config())
    kwargs.setdefault("clock", StepClock())
    return TieredStore(backend, tmp_path / "cold", **kwargs)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    store = open_test_store(tmp_path)
    with TestClient(create_app(settings_for(tmp_path), store=store)) as test_client:
        yield test_client


def upsert_rows(client: TestClient, count: int = 20, seed: int = 0) -> list[list[float]]:
    vectors = random_vectors(count, DIM, seed=seed).tolist()
    response = client.post(
        "/v1/upsert",
        json={
            "ids": list(range(count)),
            "vectors": vectors,
            "payloads": [{"n": n, "even": n % 2 == 0} for n in range(count)],
        },
    )
    assert response.status_code == 200, response.text
    return vectors


def metric_value(client: TestClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if metric == name and found == wanted:
            return float(value)
    return 0.0


# Data endpoints ------------------------------------------------------------------------


def test_upsert_returns_versions(client):
    response = client.post("/v1/upsert", json={"ids": [1, "doc-a"], "vectors": [[0.0] * DIM, [1.0] * DIM]})

    body = response.json()
    assert response.status_code == 200
    assert body["upserted"] == 2
    assert len(body["versions"]) == 2
    assert body["versions"][0] > 0


def test_search_single_vector(client):
    vectors = upsert_rows(client)

    response = client.post("/v1/search", json={"vector": vectors[3], "k": 3})

    hits = response.json()["hits"]
    assert response.status_code == 200
    assert hits[0]["id"] == 3
    assert len(hits) == 3
    assert hits[0]["tier"] == "hot"
    assert hits[0]["payload"] == {"n": 3, "even": False}
    assert hits[0]["score"] == pytest.approx(0.0, abs=1e-4)


def test_search_batch_with_filter(client):
    vectors = upsert_rows(client)

    response = client.post(
        "/v1/search",
        json={"vectors": [vectors[2], vectors[5]], "k": 4, "filter": {"even": True}, "with_payload": False},
    )

    results = response.json()["results"]
    assert response.status_code == 200
    assert len(results) == 2
    assert all(hit["id"] % 2 == 0 for hits in results for hit in hits)
    assert results[0][0]["id"] == 2
    assert "payload" not in results[0][0]


def test_get_lists_missing_ids(client):
    vectors = upsert_rows(client, 5)

    response = client.post("/v1/get", json={"ids": [4, 99, 1]})

    body = response.json()
    assert response.status_code == 200
    assert [record["id"] for record in body["records"]] == [4, 1]
    assert body["records"][0]["vector"] == pytest.approx(vectors[4], abs=1e-6)
    assert body["records"][0]["tier"] == "hot"
    assert body["missing"] == [99]


def test_delete_then_count(client):
    upsert_rows(client, 10)

    deleted = client.post("/v1/delete", json={"ids": [0, 1, 1, 50]})
    counts = client.get("/v1/count").json()

    assert deleted.status_code == 200
    assert deleted.json() == {"deleted": 3}
    assert counts == {"hot": 8, "cold": 0, "total": 8, "hot_fraction": 1.0}
    assert client.post("/v1/get", json={"ids": [0]}).json()["missing"] == [0]


def test_tier_dry_run_moves_nothing(client):
    upsert_rows(client, 20)

    response = client.post("/v1/tier", json={"dry_run": True})

    body = response.json()
    assert response.status_code == 200
    assert body["dry_run"] is True
    assert body["plan"]["demote_count"] == 16
    assert body["plan"]["hot_limit"] == 4
    assert body["plan"]["hot_count_after"] == 4
    assert body["demoted"] == 0
    assert client.get("/v1/count").json()["cold"] == 0


def test_tier_pass_then_cold_hits(client):
    vectors = upsert_rows(client, 20)

    response = client.post("/v1/tier", json={})
    counts = client.get("/v1/count").json()
    search = client.post("/v1/search", json={"vectors": vectors, "k": 1, "cold": "always"}).json()
    hot_only = client.post("/v1/search", json={"vector": vectors[0], "k": 20, "cold": "never"}).json()

    assert response.status_code == 200
    assert response.json()["demoted"] == 16
    assert counts["hot"] == 4
    assert counts["cold"] == 16
    assert [hits[0]["id"] for hits in search["results"]] == list(range(20))
    assert {hits[0]["tier"] for hits in search["results"]} == {"hot", "cold"}
    assert len(hot_only["hits"]) == 4


def test_get_names_cold_tier(client):
    upsert_rows(client, 20)
    plan = client.post("/v1/tier", json={}).json()["plan"]
    cold_id = plan["demote"][0]

    record = client.post("/v1/get", json={"ids": [cold_id], "with_vector": False}).json()["records"][0]

    assert record["tier"] == "cold"
    assert "vector" not in record


def test_status_reports_tiers(client):
    upsert_rows(client, 20)
    client.post("/v1/tier", json={})

    status = client.get("/v1/status").json()

    assert status["counts"] == {"hot": 4, "cold": 16, "hot_fraction": 0.2}
    assert status["cold_tier"]["segments"] == 1
    assert status["cold_tier"]["segment_bytes"] > 0
    assert status["access_tracker"]["ids"] == 20
    assert status["last_pass"]["result"] == "ok"
    assert status["last_pass"]["demoted"] == 16
    assert status["replica"] == "replica-test"
    assert "redis_url" not in status["settings"]


# Errors ----------------------------------------------------------------------------------


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["message"]


def test_wrong_dimension_rejected(client):
    status, error, message = error_of(client.post("/v1/upsert", json={"ids": [1], "vectors": [[0.5] * 3]}))

    assert status == 400
    assert error == "ValidationError"
    assert "dimension 3" in message
    assert f"{DIM}-dimensional" in message


def test_wrong_query_dimension_rejected(client):
    upsert_rows(client, 3)

    status, _error, message = error_of(client.post("/v1/search", json={"vector": [0.1] * (DIM + 1)}))

    assert status == 400
    assert f"dimension {DIM + 1}" in message


def test_nan_vector_rejected(client):
    body = '{"ids": [1, 2], "vectors": [[0, 0, 0, 0, 0, 0, 0, 0], [0, NaN, 0, 0, 0, 0, 0, 0]]}'

    response = client.post("/v1/upsert", content=body, headers={"content-type": "application/json"})

    status, _error, message = error_of(response)
    assert status == 400
    assert "row 1" in message
    assert "NaN" in message
    assert client.get("/v1/count").json()["hot"] == 0


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1])
def test_k_out_of_range_rejected(client, k):
    status, error, message = error_of(client.post("/v1/search", json={"vector": [0.0] * DIM, "k": k}))

    assert status == 422
    assert error == "RequestValidationError"
    assert "k:" in message
    assert f"got {k}" in message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"vector": [0.0] * DIM, "cold": "sometimes"}, "cold"),
        ({"vector": [0.0] * DIM, "vectors": [[0.0] * DIM]}, "exactly one of"),
        ({"k": 3}, "exactly one of"),
        ({"vector": [0.0] * DIM, "limit": 3}, "limit"),
        ({"vector": []}, "vector"),
    ],
)
def test_bad_search_body_rejected(client, body, fragment):
    status, _error, message = error_of(client.post("/v1/search", json=body))

    assert status == 422
    assert fragment in message


@pytest.mark.parametrize(
    ("ids", "fragment"),
    [([True], "ids.0"), ([1.5], "ids.0"), ([-1], "ids.0"), ([""], "ids.0"), ([], "ids")],
)
def test_bad_ids_rejected(client, ids, fragment):
    status, _error, message = error_of(client.post("/v1/delete", json={"ids": ids}))

    assert status == 422
    assert fragment in message


@pytest.mark.parametrize("path", ["/v1/upsert", "/v1/search", "/v1/get"])
def test_invalid_json_rejected(client, path):
    response = client.post(path, content=b'{"ids": [1,', headers={"content-type": "application/json"})

    status, error, message = error_of(response)
    assert status == 422
    assert error == "RequestValidationError"
    assert "JSON" in message


def test_duplicate_ids_rejected(client):
    status, _error, message = error_of(
        client.post("/v1/upsert", json={"ids": [7, 7], "vectors": [[0.0] * DIM, [1.0] * DIM]})
    )

    assert status == 400
    assert "Duplicate id 7" in message


def test_id_vector_count_mismatch_rejected(client):
    response = client.post("/v1/upsert", json={"ids": [1, 2], "vectors": [[0.0] * DIM]})

    status, _error, message = error_of(response)

    assert status == 400
    assert "2 ids but 1 vectors" in message


def test_reserved_payload_key_rejected(client):
    response = client.post(
        "/v1/upsert", json={"ids": [1], "vectors": [[0.0] * DIM], "payloads": [{"_tiering_id": 3}]}
    )

    status, _error, message = error_of(response)
    assert status == 400
    assert "_tiering_id" in message


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [({"color": "red"}, "'color'"), ({"n": {"$near": 3}}, "$near"), ({"$xor": []}, "$xor")],
)
def test_bad_filter_rejected(client, spec, fragment):
    upsert_rows(client, 3)

    status, error, message = error_of(client.post("/v1/search", json={"vector": [0.0] * DIM, "filter": spec}))

    assert status == 400
    assert error == "FilterError"
    assert fragment in message


def test_oversized_body_rejected(tmp_path):
    store = open_test_store(tmp_path)
    app = create_app(settings_for(tmp_path, max_body_bytes=2048), store=store)
    with TestClient(app) as small:
        vectors = [[0.123456789] * DIM] * 100

        response = small.post("/v1/upsert", json={"ids": list(range(100)), "vectors": vectors})

    status, error, message = error_of(response)

    assert status == 413
    assert error == "PayloadTooLarge"
    assert "2048 bytes" in message


def test_error_logged_once_with_ids(client, caplog):
    caplog.set_level(logging.WARNING, logger="tiering.service")

    client.post("/v1/upsert", json={"ids": [11, 12], "vectors": [[0.0] * 3, [0.0] * 3]})

    lines = [record.getMessage() for record in caplog.records if "upsert" in record.getMessage()]
    assert len(lines) == 1
    assert "2 ids [11, 12]" in lines[0]
    assert "400" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TIERING_METRIC", "cosinus", "'cosinus'"),
        ("TIERING_DIM", "0", "Invalid dim 0"),
        ("TIERING_DIM", "eight", "TIERING_DIM='eight'"),
        ("TIERING_BACKEND", "faiss", "'faiss'"),
        ("TIERING_COLD_SEARCH", "sometimes", "'sometimes'"),
        ("TIERING_HOT_MAX_FRACTION", "1.5", "1.5"),
        ("TIERING_LEASE_TTL_S", "1", "lease_ttl_s 1.0"),
    ],
)
def test_bad_settings_named(variable, value, fragment):
    environ = {"TIERING_DIM": "8", variable: value}

    with pytest.raises(ConfigurationError) as raised:
        ServiceSettings.from_env(environ)

    assert fragment in str(raised.value)


def test_settings_from_environment():
    environ = {
        "TIERING_DIM": "384",
        "TIERING_METRIC": "L2",
        "TIERING_HOT_MAX_COUNT": "1000",
        "TIERING_HOT_MAX_FRACTION": "none",
        "TIERING_INTERVAL_S": "30",
        "TIERING_REDIS_URL": "redis://:secret@127.0.0.1:6379/0",
    }

    settings = ServiceSettings.from_env(environ, port=9000)

    config = settings.tiering_config()
    assert settings.dim == 384
    assert settings.port == 9000
    assert settings.host == "127.0.0.1"
    assert config.policy.budget.max_count == 1000
    assert config.policy.budget.max_fraction is None
    assert settings.redis_key_prefix == "tiering:tiering"
    assert "secret" not in repr(settings)
    assert "secret" not in json.dumps(settings.summary())


# Metrics ---------------------------------------------------------------------------------


def test_metrics_change_after_calls(client):
    before = metric_value(client, "tiering_requests_total", operation="upsert", tier="hot", status="200")
    vectors = upsert_rows(client, 20)
    client.post("/v1/search", json={"vector": vectors[0], "k": 2})
    client.post("/v1/upsert", json={"ids": [1], "vectors": [[0.0] * 3]})
    client.post("/v1/tier", json={})

    assert before == 0.0
    assert metric_value(client, "tiering_requests_total", operation="upsert", tier="hot", status="200") == 1.0
    assert metric_value(client, "tiering_requests_total", operation="upsert", tier="hot", status="400") == 1.0
    latency_count = "tiering_request_duration_seconds_count"
    assert metric_value(client, latency_count, operation="search", tier="hot") == 1.0
    assert metric_value(client, "tiering_results_total", operation="search", tier="hot") == 2.0
    assert metric_value(client, "tiering_passes_total", result="ok") == 1.0
    assert metric_value(client, "tiering_demoted_vectors_total") == 16.0
    assert metric_value(client, "tiering_vectors", tier="hot") == 4.0
    assert metric_value(client, "tiering_vectors", tier="cold") == 16.0
    assert metric_value(client, "tiering_tier_bytes", tier="hot", kind="vectors") == 4 * DIM * 4
    assert metric_value(client, "tiering_tier_bytes", tier="cold", kind="segments") > 0
    assert metric_value(client, "tiering_access_tracked_ids") == 20.0


def test_metrics_label_cold_searches(client):
    vectors = upsert_rows(client, 20)
    client.post("/v1/tier", json={})

    client.post("/v1/search", json={"vector": vectors[0], "k": 20, "cold": "always"})

    latency_count = "tiering_request_duration_seconds_count"
    assert metric_value(client, latency_count, operation="search", tier="hot+cold") == 1.0
    assert metric_value(client, "tiering_results_total", operation="search", tier="cold") == 16.0


# Probes ----------------------------------------------------------------------------------


def test_probes_ready_with_open_store(client):
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").status_code == 200


def test_readiness_flips_when_backend_closed(tmp_path):
    store = open_test_store(tmp_path, "qdrant")
    with TestClient(create_app(settings_for(tmp_path), store=store)) as qdrant_client:
        assert qdrant_client.get("/readyz").status_code == 200

        store.backend.close()
        response = qdrant_client.get("/readyz")
        search = qdrant_client.post("/v1/search", json={"vector": [0.0] * DIM})

        assert response.status_code == 503
        assert "backend did not answer" in response.json()["reason"]
        assert qdrant_client.get("/healthz").status_code == 200
        assert search.status_code == 500
        assert "Qdrant" in search.json()["message"]


def test_not_ready_while_store_opens(tmp_path):
    release = threading.Event()

    def slow_open(settings: ServiceSettings) -> TieredStore:
        release.wait(10)
        return open_test_store(tmp_path)

    with TestClient(create_app(settings_for(tmp_path), opener=slow_open)) as opening:
        not_ready = opening.get("/readyz")
        early = opening.post("/v1/search", json={"vector": [0.0] * DIM})
        release.set()
        ready = wait_for(lambda: opening.get("/readyz").status_code == 200)

    assert not_ready.status_code == 503
    assert not_ready.json()["reason"] == "opening the store"
    assert early.status_code == 503
    assert early.json()["error"] == "ServiceUnavailableError"
    assert ready


def test_gives_up_after_open_attempts(tmp_path):
    def broken_open(settings: ServiceSettings) -> TieredStore:
        raise ConfigurationError("Collection 'docs' exists with dimension 4, not 8.")

    app = create_app(settings_for(tmp_path, open_attempts=1), opener=broken_open)
    with TestClient(app) as failing:
        gave_up = wait_for(lambda: failing.get("/healthz").status_code == 503)
        ready = failing.get("/readyz").json()

    assert gave_up
    assert "giving up" in ready["reason"]
    assert "dimension 4" in ready["reason"]


def wait_for(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# Background tiering loop -------------------------------------------------------------------


def test_loop_runs_passes(tmp_path):
    store = open_test_store(tmp_path)
    with TestClient(create_app(settings_for(tmp_path, interval_s=0.05), store=store)) as looping:
        upsert_rows(looping, 20)

        passed = wait_for(lambda: metric_value(looping, "tiering_demoted_vectors_total") == 16)
        cold = looping.get("/v1/count").json()["cold"]

    assert passed
    assert cold == 16


def test_loop_survives_failing_pass(tmp_path, caplog):
    failures = {"left": 1}

    def fail_once(step: str) -> None:
        if step == "segment_uploaded" and failures["left"] > 0:
            failures["left"] -= 1
            raise ObjectStoreError("put 'segments/x.parquet' failed: injected by the test.")

    caplog.set_level(logging.ERROR, logger="tiering.service")
    store = open_test_store(tmp_path, fault_hook=fail_once)
    with TestClient(create_app(settings_for(tmp_path, interval_s=0.05), store=store)) as looping:
        upsert_rows(looping, 20)

        passed = wait_for(lambda: metric_value(looping, "tiering_demoted_vectors_total") == 16)
        failed = metric_value(looping, "tiering_passes_total", result="failed")
        cold = looping.get("/v1/count").json()["cold"]

    assert passed
    assert failed == 1.0
    assert cold == 16
    assert any("injected by the test" in record.getMessage() for record in caplog.records)


def test_pass_already_running_conflicts(tmp_path):
    entered = threading.Event()
    release = threading.Event()

    def block(step: str) -> None:
        if step == "journal_written":
            entered.set()
            release.wait(10)

    store = open_test_store(tmp_path, fault_hook=block)
    with TestClient(create_app(settings_for(tmp_path), store=store)) as busy:
        upsert_rows(busy, 20)
        runner = busy.app.state.runtime.runner
        background = threading.Thread(target=runner.run_pass)
        background.start()
        assert entered.wait(10)

        response = busy.post("/v1/tier", json={})
        release.set()
        background.join(10)

    assert response.status_code == 409
    assert "already running" in response.json()["message"]


def test_shutdown_stops_loop(tmp_path):
    store = open_test_store(tmp_path)
    app = create_app(settings_for(tmp_path, interval_s=0.05), store=store)
    with TestClient(app):
        runtime = app.state.runtime
        threads = [task._thread for task in runtime.tasks]
        assert all(thread.is_alive() for thread in threads)

    assert threads
    assert not any(thread.is_alive() for thread in threads)
    with pytest.raises(Exception, match="closed"):
        store.count()


def test_hot_fraction_after_loop_is_finite(client):
    upsert_rows(client, 5)

    counts = client.get("/v1/count").json()

    assert math.isclose(counts["hot_fraction"], 1.0)
