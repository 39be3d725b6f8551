"""The backend conformance suite against real servers, for example from docker-compose.yml.

Every test here is marked ``live`` and runs only for the servers named by these
environment variables; without them the tests are skipped:

* ``TIERING_LIVE_QDRANT_URL``: a Qdrant server, e.g. ``http://127.0.0.1:6333``
  (API key from ``QDRANT_API_KEY``).
* ``TIERING_LIVE_MILVUS_URI``: a Milvus server, e.g. ``http://127.0.0.1:19530``
  (token from ``MILVUS_TOKEN``).
* ``TIERING_LIVE_WEAVIATE``: ``http_host:port,grpc_host:port``, e.g.
  ``127.0.0.1:8081,127.0.0.1:50051`` (API key from ``WEAVIATE_API_KEY``).
* ``TIERING_LIVE_PINECONE``: ``metric=host`` pairs for existing dense indexes, e.g.
  ``cosine=http://127.0.0.1:5081,dot=http://127.0.0.1:5082,l2=http://127.0.0.1:5083``
  (Pinecone Local), with ``TIERING_LIVE_PINECONE_DIM`` (default 16) and
  ``PINECONE_API_KEY`` (any value for Pinecone Local). Cases that need another
  dimension or metric are skipped.

Run with ``python3 -m pytest -m live tests/test_live_backends.py``. Each test writes
to a new collection (Qdrant, Milvus, Weaviate) or namespace (Pinecone) and removes it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest
from test_backend_conformance import (  # noqa: F401 - pytest collects the imported tests
    test_batch_of_ten_thousand,
    test_close_is_idempotent,
    test_concurrent_searches_match_serial,
    test_delete_ignores_missing_ids,
    test_empty_payload_round_trip,
    test_fetch_cosine_returns_unit_vector,
    test_fetch_empty_request,
    test_fetch_leaves_out_missing_ids,
    test_id_round_trip,
    test_int_and_string_ids_are_distinct,
    test_iter_ids_yields_each_id_once,
    test_payload_round_trip,
    test_search_empty_collection,
    test_search_filter_matches_python,
    test_search_filter_respects_k,
    test_search_k_larger_than_collection,
    test_search_l2_exact_match_scores_zero,
    test_search_matches_exact_scores,
    test_search_returns_payload_and_version,
    test_upsert_overwrites_record,
    test_upsert_then_count,
    test_version_round_trip,
)

from tiering.backend import Backend
from tiering.records import Metric

pytestmark = pytest.mark.live

MakeBackend = Callable[[int, Metric], Backend]
Cleanup = Callable[[], None]

LIVE_BACKENDS = ["qdrant", "milvus", "weaviate", "pinecone"]


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _qdrant(dim: int, metric: Metric) -> tuple[Backend, Cleanup]:
    from qdrant_client import QdrantClient

    from tiering.adapters.qdrant import QdrantBackend

    url = os.environ["TIERING_LIVE_QDRANT_URL"]
    client = QdrantClient(url=url, api_key=os.environ.get("QDRANT_API_KEY"), timeout=30)
    name = _name("tiering_live")
    backend = QdrantBackend(client, name, dim, metric)
    return backend, lambda: QdrantClient(url=url, timeout=30).delete_collection(name)


def _milvus(dim: int, metric: Metric) -> tuple[Backend, Cleanup]:
    from tiering.adapters.milvus import MilvusBackend, connect_milvus

    uri = os.environ["TIERING_LIVE_MILVUS_URI"]
    token = os.environ.get("MILVUS_TOKEN", "")
    name = _name("tiering_live")
    backend = MilvusBackend(connect_milvus(uri, token=token), name, dim, metric, index_type="FLAT")

    def cleanup() -> None:
        client = connect_milvus(uri, token=token)
        client.drop_collection(name)
        client.close()

    return backend, cleanup


def _weaviate(dim: int, metric: Metric) -> tuple[Backend, Cleanup]:
    from tiering.adapters.weaviate import WeaviateBackend, connect_weaviate

    http_address, grpc_address = os.environ["TIERING_LIVE_WEAVIATE"].split(",")
    http_host, http_port = http_address.rsplit(":", 1)
    grpc_host, grpc_port = grpc_address.rsplit(":", 1)

    def connect() -> object:
        return connect_weaviate(
            http_host,
            int(http_port),
            grpc_host,
            int(grpc_port),
            api_key=os.environ.get("WEAVIATE_API_KEY"),
        )

    name = _name("TieringLive")
    backend = WeaviateBackend(connect(), name, dim, metric)  # type: ignore[arg-type]

    def cleanup() -> None:
        client = connect()
        client.collections.delete(name)  # type: ignore[attr-defined]
        client.close()  # type: ignore[attr-defined]

    return backend, cleanup


def _pinecone(dim: int, metric: Metric) -> tuple[Backend, Cleanup]:
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    hosts = dict(pair.split("=", 1) for pair in os.environ["TIERING_LIVE_PINECONE"].split(","))
    index_dim = int(os.environ.get("TIERING_LIVE_PINECONE_DIM", "16"))
    host = hosts.get(metric.value)
    if host is None or dim != index_dim:
        pytest.skip(f"no live Pinecone index with dim {dim} and metric {metric.value}")
    api_key = os.environ.get("PINECONE_API_KEY", "pclocal")
    namespace = _name("tiering-live")
    backend = PineconeBackend(connect_pinecone(host, api_key), dim, metric, namespace=namespace)

    def cleanup() -> None:
        index = connect_pinecone(host, api_key)
        index.delete(delete_all=True, namespace=namespace)
        index.close()

    return backend, cleanup


_VARIABLES = {
    "qdrant": "TIERING_LIVE_QDRANT_URL",
    "milvus": "TIERING_LIVE_MILVUS_URI",
    "weaviate": "TIERING_LIVE_WEAVIATE",
    "pinecone": "TIERING_LIVE_PINECONE",
}

if not any(os.environ.get(name) for name in _VARIABLES.values()):
    pytest.skip(
        "no live server configured: set TIERING_LIVE_QDRANT_URL, TIERING_LIVE_MILVUS_URI, "
        "TIERING_LIVE_WEAVIATE or TIERING_LIVE_PINECONE",
        allow_module_level=True,
    )

_FACTORIES = {"qdrant": _qdrant, "milvus": _milvus, "weaviate": _weaviate, "pinecone": _pinecone}


@pytest.fixture(params=LIVE_BACKENDS)
def make_backend(request: pytest.FixtureRequest) -> Iterator[MakeBackend]:
    """Override of the conformance fixture: backends on the live servers."""
    variable = _VARIABLES[request.param]
    if not os.environ.get(variable):
        pytest.skip(f"{variable} is not set")
    opened: list[tuple[Backend, Cleanup]] = []

    def make(dim: int, metric: Metric) -> Backend:
        backend, cleanup = _FACTORIES[request.param](dim, Metric.parse(metric))
        opened.append((backend, cleanup))
        return backend

    yield make
    for backend, cleanup in opened:
        backend.close()
        cleanup()
