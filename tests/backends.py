"""Fixtures that build every backend adapter for the conformance suite.

``make_backend`` is parametrised over the backend names in :data:`BACKENDS`; each
call ``make_backend(dim, metric)`` returns a fresh, empty collection and closes it at
teardown. Qdrant runs in qdrant-client's local mode and Milvus in Milvus Lite, both in
process. Weaviate and Pinecone run the real client libraries against local protocol
fakes from ``tests/fakes`` (fakes, not the real engines).
"""

from __future__ import annotations

import itertools
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tiering.backend import Backend
from tiering.records import Metric

BACKENDS = ["memory", "qdrant", "milvus", "pinecone", "weaviate"]

MakeBackend = Callable[[int, Metric], Backend]

_names = itertools.count()


def unique_name(prefix: str) -> str:
    """Return a collection name that no other test in this process uses."""
    return f"{prefix}_{next(_names)}"


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _memory_factory(opened: list[Backend]) -> MakeBackend:
    from tiering.adapters.memory import InMemoryBackend

    def make(dim: int, metric: Metric) -> Backend:
        backend = InMemoryBackend(dim, metric)
        opened.append(backend)
        return backend

    return make


def _qdrant_factory(opened: list[Backend]) -> MakeBackend:
    from qdrant_client import QdrantClient

    from tiering.adapters.qdrant import QdrantBackend

    def make(dim: int, metric: Metric) -> Backend:
        backend = QdrantBackend(QdrantClient(":memory:"), unique_name("qdrant"), dim, metric)
        opened.append(backend)
        return backend

    return make


@pytest.fixture(scope="session")
def milvus_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Milvus Lite client for the whole session.

    Milvus Lite keeps its embedded server alive until the process exits, so tests share
    one database file and use a new collection name each.
    """
    from tiering.adapters.milvus import connect_milvus

    client = connect_milvus(str(tmp_path_factory.mktemp("milvus") / "tests.db"))
    yield client
    client.close()


def _milvus_factory(opened: list[Backend], request: pytest.FixtureRequest) -> MakeBackend:
    from tiering.adapters.milvus import MilvusBackend

    client = request.getfixturevalue("milvus_client")

    def make(dim: int, metric: Metric) -> Backend:
        name = unique_name("milvus")
        backend = MilvusBackend(client, name, dim, metric, index_type="FLAT", close_client=False)
        request.addfinalizer(lambda: client.drop_collection(name))
        opened.append(backend)
        return backend

    return make


def _pinecone_factory(opened: list[Backend], request: pytest.FixtureRequest) -> MakeBackend:
    from fakes.pinecone_fake import PineconeFake

    from tiering.adapters.pinecone import PINECONE_METRICS, PineconeBackend, connect_pinecone

    def make(dim: int, metric: Metric) -> Backend:
        fake = PineconeFake(dim, PINECONE_METRICS[Metric.parse(metric)])
        request.addfinalizer(fake.stop)
        index = connect_pinecone(fake.host, "fake-api-key", timeout_s=10)
        backend = PineconeBackend(index, dim, metric, namespace="tests")
        opened.append(backend)
        return backend

    return make


@pytest.fixture(scope="session")
def weaviate_fake() -> Iterator[Any]:
    """One fake Weaviate server (tests/fakes/weaviate_fake.py) for the whole session."""
    from fakes.weaviate_fake import WeaviateFake

    fake = WeaviateFake()
    yield fake
    fake.stop()


def _weaviate_factory(opened: list[Backend], request: pytest.FixtureRequest) -> MakeBackend:
    from tiering.adapters.weaviate import WeaviateBackend, connect_weaviate

    fake = request.getfixturevalue("weaviate_fake")

    def make(dim: int, metric: Metric) -> Backend:
        client = connect_weaviate("127.0.0.1", fake.http_port, "127.0.0.1", fake.grpc_port)
        backend = WeaviateBackend(client, unique_name("Tiering"), dim, metric)
        opened.append(backend)
        return backend

    return make


_FACTORIES: dict[str, Callable[[list[Backend], pytest.FixtureRequest], MakeBackend]] = {
    "memory": lambda opened, _: _memory_factory(opened),
    "qdrant": lambda opened, _: _qdrant_factory(opened),
    "milvus": _milvus_factory,
    "pinecone": _pinecone_factory,
    "weaviate": _weaviate_factory,
}


@pytest.fixture(params=BACKENDS)
def make_backend(request: pytest.FixtureRequest) -> Iterator[MakeBackend]:
    """Return a factory ``(dim, metric) -> Backend`` for one backend kind."""
    opened: list[Backend] = []
    yield _FACTORIES[request.param](opened, request)
    for backend in opened:
        backend.close()
