"""How the service opens its backend and cold tier from settings, and how errors map to statuses."""

from __future__ import annotations

import pytest
from backends import closed_port
from fastapi.testclient import TestClient
from servers import S3Endpoint, moto_control, moto_server  # noqa: F401  (fixtures)
from test_service import DIM, settings_for, upsert_rows, wait_for

from tiering.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    FilterError,
    ManifestConflictError,
    ObjectStoreError,
    TieringError,
    ValidationError,
)
from tiering.s3store import ObjectStoreUnavailableError
from tiering.service.app import create_app
from tiering.service.errors import status_for
from tiering.service.loop import TieringBusyError
from tiering.service.runtime import ServiceUnavailableError
from tiering.service.stores import open_store
from tiering.shared_scores import SharedScoresError


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValidationError("bad"), 400),
        (FilterError("bad"), 400),
        (TieringBusyError("busy"), 409),
        (BackendUnavailableError("down"), 503),
        (ObjectStoreUnavailableError("down"), 503),
        (SharedScoresError("down"), 503),
        (ServiceUnavailableError("opening"), 503),
        (BackendError("failed"), 500),
        (ObjectStoreError("failed"), 500),
        (ManifestConflictError("raced"), 500),
        (ConfigurationError("invalid"), 500),
        (TieringError("other"), 500),
    ],
)
def test_error_statuses(error, status):
    assert status_for(error) == status


def test_s3_cold_tier_on_moto(tmp_path, request, monkeypatch):
    moto: S3Endpoint = request.getfixturevalue("moto_server")
    bucket = moto.new_bucket()
    monkeypatch.setenv("TIERING_S3_ENDPOINT_URL", moto.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto.secret_access_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    unused = tmp_path / "unused"
    settings = settings_for(
        tmp_path, s3_url=f"s3://{bucket}/docs", min_idle_s=0.0, cooldown_s=0.0, cold_dir=str(unused)
    )

    with TestClient(create_app(settings)) as client:
        assert wait_for(lambda: client.get("/readyz").status_code == 200)
        upsert_rows(client, 20)
        tiered = client.post("/v1/tier", json={})
        counts = client.get("/v1/count").json()

    s3 = moto.client()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="docs/segments/")  # type: ignore[attr-defined]
    assert tiered.status_code == 200
    assert counts["cold"] == 16
    assert listed["KeyCount"] == 1
    assert not unused.exists()


def test_qdrant_local_path_reopens(tmp_path):
    settings = settings_for(
        tmp_path, backend="qdrant", qdrant_path=str(tmp_path / "qdrant"), collection="docs", min_idle_s=0.0
    )
    store = open_store(settings)
    store.upsert([1, 2], [[0.0] * DIM, [1.0] * DIM])
    store.close()

    reopened = open_store(settings)
    try:
        assert reopened.count().hot == 2
    finally:
        reopened.close()


def test_unreachable_qdrant_not_ready(tmp_path):
    settings = settings_for(
        tmp_path, backend="qdrant", qdrant_url=f"http://127.0.0.1:{closed_port()}", open_attempts=1,
        backend_timeout_s=2.0,
    )

    with TestClient(create_app(settings)) as client:
        gave_up = wait_for(lambda: client.get("/healthz").status_code == 503)
        ready = client.get("/readyz")
        search = client.post("/v1/search", json={"vector": [0.0] * DIM})

    assert gave_up
    assert ready.status_code == 503
    assert "BackendUnavailableError" in ready.json()["reason"]
    assert search.status_code == 503
    assert "not open" in search.json()["message"]


def test_milvus_lite_backend_opens(tmp_path):
    pytest.importorskip("pymilvus", reason="the milvus backend needs pymilvus and milvus-lite")
    database = str(tmp_path / "milvus.db")
    settings = settings_for(tmp_path, backend="milvus", milvus_uri=database, collection="docs")

    store = open_store(settings)
    try:
        store.upsert([1, 2], [[0.0] * DIM, [1.0] * DIM])
        hits = store.search([0.9] * DIM, k=1)
        counts = store.count()
    finally:
        store.close()

    assert hits[0].id == 2
    assert counts.hot == 2


def test_backend_url_opens_pinecone_fake(tmp_path):
    from fakes.pinecone_fake import PineconeFake

    fake = PineconeFake(DIM, "euclidean")
    try:
        url = fake.host.replace("http://", "pinecone+http://") + "?namespace=svc"
        settings = settings_for(tmp_path, backend="memory", backend_url=url, metric="l2")
        store = open_store(settings)
        try:
            store.upsert([1, 2], [[0.0] * DIM, [1.0] * DIM])
            hits = store.search([0.9] * DIM, k=1)
        finally:
            store.close()
    finally:
        fake.stop()

    assert hits[0].id == 2
