"""Backends and cold stores opened from URLs, against the engines and fakes used in tests."""

from __future__ import annotations

import numpy as np
import pytest

from tiering.connect import open_backend_url, open_cold_store
from tiering.errors import ConfigurationError
from tiering.objectstore import LocalFolderStore
from tiering.records import Record


def roundtrip(backend) -> None:
    vector = np.arange(4, dtype=np.float32) + 1.0
    backend.upsert([Record("a", vector, {"k": 1}, 3)])
    hits = backend.search(vector[np.newaxis, :], 1)
    assert hits[0][0].id == "a"
    assert hits[0][0].version == 3
    backend.close()


def test_qdrant_local_url(tmp_path):
    backend = open_backend_url(f"qdrant+local://{tmp_path}/q", "c", 4, "l2")

    assert backend.in_process  # type: ignore[attr-defined]
    roundtrip(backend)


def test_milvus_lite_url(tmp_path):
    backend = open_backend_url(f"milvus://{tmp_path}/m.db", "c", 4, "l2")

    assert backend.in_process  # type: ignore[attr-defined]
    roundtrip(backend)


def test_pinecone_url_against_fake():
    from fakes.pinecone_fake import PineconeFake

    fake = PineconeFake(4, "euclidean")
    try:
        url = fake.host.replace("http://", "pinecone+http://") + "?namespace=docs"
        roundtrip(open_backend_url(url, "unused", 4, "l2"))
    finally:
        fake.stop()


def test_weaviate_url_against_fake(weaviate_fake):
    url = f"weaviate://127.0.0.1:{weaviate_fake.http_port}?grpc_port={weaviate_fake.grpc_port}"

    roundtrip(open_backend_url(url, "ConnectTest", 4, "l2"))


def test_pinecone_needs_key_for_https(monkeypatch):
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)

    with pytest.raises(ConfigurationError, match="PINECONE_API_KEY is not set"):
        open_backend_url("pinecone+https://index.example", "c", 4, "l2")


@pytest.mark.parametrize("url", ["redis://x", "qdrant-ish://x", "/just/a/path"])
def test_unknown_backend_url(url):
    with pytest.raises(ConfigurationError, match="Unknown backend URL"):
        open_backend_url(url, "c", 4, "l2")


def test_cold_store_locations(tmp_path):
    assert isinstance(open_cold_store(tmp_path), LocalFolderStore)
    with pytest.raises(ConfigurationError, match="Unknown cold store location 'gs://b'"):
        open_cold_store("gs://b")
