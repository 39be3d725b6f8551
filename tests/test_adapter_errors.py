"""Every third-party exception an adapter can raise comes out as a tiering.errors class."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from backends import closed_port, unique_name

from tiering.errors import BackendError, BackendUnavailableError, ConfigurationError
from tiering.records import Metric, Record

DIM = 4


def one_record() -> Record:
    return Record(id=1, vector=np.ones(DIM, np.float32), version=1)


# --- Qdrant -----------------------------------------------------------------------------


def test_qdrant_closed_client_raises_backend_error():
    from qdrant_client import QdrantClient

    from tiering.adapters.qdrant import QdrantBackend

    backend = QdrantBackend(QdrantClient(":memory:"), "closed", DIM, Metric.COSINE)
    backend.close()
    backend.close()

    operations = [
        lambda: backend.upsert([one_record()]),
        lambda: backend.search(np.ones((1, DIM), np.float32), 1),
        lambda: backend.fetch([1]),
        lambda: backend.delete([1]),
        lambda: backend.count(),
        lambda: list(backend.iter_ids()),
    ]
    for operation in operations:
        with pytest.raises(BackendError) as info:
            operation()
        assert isinstance(info.value.__cause__, RuntimeError)
        assert "closed" in str(info.value)


@pytest.mark.parametrize("prefer_grpc", [False, True], ids=["rest", "grpc"])
def test_qdrant_closed_port_raises_unavailable(prefer_grpc):
    from qdrant_client import QdrantClient

    from tiering.adapters.qdrant import QdrantBackend

    port = closed_port()
    client = QdrantClient(
        host="127.0.0.1",
        port=port,
        grpc_port=port,
        prefer_grpc=prefer_grpc,
        timeout=2,
        check_compatibility=False,
    )
    with pytest.raises(BackendUnavailableError) as info:
        QdrantBackend(client, "c", DIM, Metric.COSINE)
    assert "Qdrant" in str(info.value)
    assert info.value.__cause__ is not None
    client.close()


def test_qdrant_http_error_status_is_translated():
    from qdrant_client.http.exceptions import UnexpectedResponse

    from tiering.adapters.qdrant import translate_error
    from tiering.errors import UnsupportedOperationError

    def response(status: int) -> UnexpectedResponse:
        return UnexpectedResponse(status, "reason", b"{}", None)  # type: ignore[arg-type]

    assert type(translate_error(response(503), "op")) is BackendUnavailableError
    assert type(translate_error(response(501), "op")) is UnsupportedOperationError
    assert type(translate_error(response(400), "op")) is BackendError
    assert "HTTP 400" in str(translate_error(response(400), "op"))


def test_qdrant_existing_collection_mismatch_rejected():
    from qdrant_client import QdrantClient

    from tiering.adapters.qdrant import QdrantBackend

    client = QdrantClient(":memory:")
    name = unique_name("mismatch")
    QdrantBackend(client, name, DIM, Metric.COSINE)

    with pytest.raises(ConfigurationError, match="4-dimensional"):
        QdrantBackend(client, name, DIM + 1, Metric.COSINE)
    with pytest.raises(ConfigurationError, match="metric='l2'"):
        QdrantBackend(client, name, DIM, Metric.L2)
    reopened = QdrantBackend(client, name, DIM, "cosine")
    assert reopened.count() == 0
    reopened.close()


def test_qdrant_foreign_point_rejected():
    from qdrant_client import QdrantClient, models

    from tiering.adapters.qdrant import QdrantBackend

    client = QdrantClient(":memory:")
    backend = QdrantBackend(client, "foreign", DIM, Metric.DOT)
    client.upsert("foreign", [models.PointStruct(id=3, vector=[1.0] * DIM, payload={"a": 1})])

    with pytest.raises(BackendError, match="not written by vector-tiering"):
        backend.fetch([3])
    backend.close()


# --- Milvus -----------------------------------------------------------------------------


def test_milvus_closed_port_raises_unavailable():
    from tiering.adapters.milvus import connect_milvus

    with pytest.raises(BackendUnavailableError) as info:
        connect_milvus(f"http://127.0.0.1:{closed_port()}", timeout_s=2)
    assert "Milvus" in str(info.value)
    assert info.value.__cause__ is not None


def test_milvus_closed_client_raises_backend_error(tmp_path):
    from tiering.adapters.milvus import MilvusBackend, connect_milvus

    backend = MilvusBackend(connect_milvus(str(tmp_path / "closed.db")), "closed", DIM, "l2")
    backend.close()
    backend.close()

    operations = [
        lambda: backend.upsert([one_record()]),
        lambda: backend.search(np.ones((1, DIM), np.float32), 1),
        lambda: backend.fetch([1]),
        lambda: backend.delete([1]),
        lambda: backend.count(),
        lambda: list(backend.iter_ids()),
    ]
    for operation in operations:
        with pytest.raises(BackendError) as info:
            operation()
        assert info.value.__cause__ is not None
        assert "'closed'" in str(info.value)


def test_milvus_unknown_index_type_rejected(milvus_client):
    from tiering.adapters.milvus import MilvusBackend

    for bad in ["HNSWW", "ivf-flat", ""]:
        with pytest.raises(ConfigurationError, match="Unknown Milvus index type"):
            MilvusBackend(milvus_client, unique_name("bad"), DIM, "l2", index_type=bad)
    backend = MilvusBackend(
        milvus_client, unique_name("hnsw"), DIM, "l2", index_type="hnsw", close_client=False
    )
    assert backend.count() == 0


def test_milvus_existing_collection_mismatch_rejected(milvus_client):
    from tiering.adapters.milvus import MilvusBackend

    name = unique_name("mismatch")
    MilvusBackend(milvus_client, name, DIM, "cosine", close_client=False)

    with pytest.raises(ConfigurationError, match="4-dimensional"):
        MilvusBackend(milvus_client, name, DIM + 1, "cosine", close_client=False)
    with pytest.raises(ConfigurationError, match="metric='dot'"):
        MilvusBackend(milvus_client, name, DIM, "dot", close_client=False)

    foreign = unique_name("foreign")
    milvus_client.create_collection(foreign, dimension=DIM)
    with pytest.raises(ConfigurationError, match="did not create it"):
        MilvusBackend(milvus_client, foreign, DIM, "cosine", close_client=False)


def test_milvus_partition_isolates_records(milvus_client):
    from tiering.adapters.milvus import MilvusBackend

    name = unique_name("parts")
    first = MilvusBackend(milvus_client, name, DIM, "l2", partition="p1", close_client=False)
    second = MilvusBackend(milvus_client, name, DIM, "l2", partition="p2", close_client=False)
    first.upsert([one_record()])
    second.upsert([Record(id=2, vector=np.zeros(DIM, np.float32), version=1)])

    assert first.count() == 1
    assert second.count() == 1
    assert [r.id for r in first.fetch([1, 2])] == [1]
    assert [h.id for h in second.search(np.ones((1, DIM), np.float32), 5)[0]] == [2]
    assert milvus_client.has_partition(name, "p1")


# --- Pinecone (against the local fake in tests/fakes/pinecone_fake.py) -------------------


@pytest.fixture
def pinecone_fake():
    from fakes.pinecone_fake import PineconeFake

    with PineconeFake(DIM, "euclidean") as fake:
        yield fake


def test_pinecone_closed_port_raises_unavailable():
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    index = connect_pinecone(f"http://127.0.0.1:{closed_port()}", "key", timeout_s=2)
    with pytest.raises(BackendUnavailableError) as info:
        PineconeBackend(index, DIM, "l2")
    assert "Pinecone could not be reached" in str(info.value)
    assert info.value.__cause__ is not None


def test_pinecone_server_errors_raise_unavailable(pinecone_fake):
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    backend = PineconeBackend(connect_pinecone(pinecone_fake.host, "key"), DIM, "l2")
    # The SDK makes one attempt and three retries on 503 before giving up.
    pinecone_fake.fail_statuses.extend([503] * 4)

    with pytest.raises(BackendUnavailableError, match="HTTP 503"):
        backend.count()
    assert pinecone_fake.fail_statuses == []
    assert backend.count() == 0


def test_pinecone_client_error_raises_backend_error(pinecone_fake):
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    backend = PineconeBackend(connect_pinecone(pinecone_fake.host, "key"), DIM, "l2")
    pinecone_fake.fail_statuses.append(400)

    with pytest.raises(BackendError, match="HTTP 400") as info:
        backend.upsert([one_record()])
    assert type(info.value) is BackendError


def test_pinecone_closed_client_raises_backend_error(pinecone_fake):
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    backend = PineconeBackend(connect_pinecone(pinecone_fake.host, "key"), DIM, "l2")
    backend.close()
    backend.close()

    with pytest.raises(BackendError) as info:
        backend.fetch([1])
    assert info.value.__cause__ is not None


def test_pinecone_index_mismatch_rejected(pinecone_fake):
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    index = connect_pinecone(pinecone_fake.host, "key")
    with pytest.raises(ConfigurationError, match="4-dimensional"):
        PineconeBackend(index, DIM + 1, "l2")
    with pytest.raises(ConfigurationError, match="'euclidean'"):
        PineconeBackend(index, DIM, "cosine")


def test_pinecone_foreign_vector_rejected(pinecone_fake):
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    index = connect_pinecone(pinecone_fake.host, "key")
    backend = PineconeBackend(index, DIM, "l2")
    index.upsert(vectors=[{"id": "i:1", "values": [1.0] * DIM, "metadata": {"a": 1}}])

    with pytest.raises(BackendError, match="not written by vector-tiering"):
        backend.fetch([1])


def test_pinecone_namespaces_isolate_records(pinecone_fake):
    from tiering.adapters.pinecone import PineconeBackend, connect_pinecone

    index = connect_pinecone(pinecone_fake.host, "key")
    first = PineconeBackend(index, DIM, "l2", namespace="a")
    default = PineconeBackend(index, DIM, "l2")
    first.upsert([one_record()])
    default.upsert([Record(id=2, vector=np.zeros(DIM, np.float32), version=1)])

    assert first.count() == 1
    assert default.count() == 1
    assert [r.id for r in first.fetch([1, 2])] == [1]
    assert [h.id for h in default.search(np.ones((1, DIM), np.float32), 5)[0]] == [2]
    assert [i for batch in first.iter_ids() for i in batch] == [1]


# --- Weaviate (against the local fake in tests/fakes/weaviate_fake.py) -------------------


def weaviate_backend(fake, name: str, metric: str = "l2"):
    from tiering.adapters.weaviate import WeaviateBackend, connect_weaviate

    client = connect_weaviate("127.0.0.1", fake.http_port, "127.0.0.1", fake.grpc_port)
    return WeaviateBackend(client, name, DIM, metric)


def test_weaviate_closed_port_raises_unavailable():
    from tiering.adapters.weaviate import connect_weaviate

    with pytest.raises(BackendUnavailableError) as info:
        connect_weaviate("127.0.0.1", closed_port(), "127.0.0.1", closed_port(), timeout_s=2)
    assert "Weaviate could not be reached" in str(info.value)
    assert info.value.__cause__ is not None


def test_weaviate_invalid_address_rejected():
    from tiering.adapters.weaviate import connect_weaviate

    with pytest.raises(ConfigurationError, match="must be different"):
        connect_weaviate("127.0.0.1", 8080, "127.0.0.1", 8080)


def test_weaviate_stopped_grpc_raises_unavailable():
    from fakes.weaviate_fake import WeaviateFake

    fake = WeaviateFake()
    backend = weaviate_backend(fake, unique_name("Stopped"))
    fake.stop()

    # Batch delete is the one gRPC call weaviate-client 4.24 does not retry; search and
    # count retry UNAVAILABLE with backoff for about a minute before failing the same way.
    with pytest.raises(BackendUnavailableError, match="UNAVAILABLE"):
        backend.delete([1])
    backend.close()


def test_weaviate_closed_client_raises_backend_error(weaviate_fake):
    backend = weaviate_backend(weaviate_fake, unique_name("Closed"))
    backend.close()
    backend.close()

    operations = [
        lambda: backend.upsert([one_record()]),
        lambda: backend.search(np.ones((1, DIM), np.float32), 1),
        lambda: backend.fetch([1]),
        lambda: backend.delete([1]),
        lambda: backend.count(),
        lambda: list(backend.iter_ids()),
    ]
    for operation in operations:
        with pytest.raises(BackendError) as info:
            operation()
        assert info.value.__cause__ is not None


def test_weaviate_metric_mismatch_rejected(weaviate_fake):
    name = unique_name("Mismatch")
    weaviate_backend(weaviate_fake, name, "cosine").close()

    with pytest.raises(ConfigurationError, match="metric='dot'"):
        weaviate_backend(weaviate_fake, name, "dot")
    reopened = weaviate_backend(weaviate_fake, name, "cosine")
    assert reopened.count() == 0
    reopened.close()


def test_weaviate_payload_type_change_rejected(weaviate_fake):
    backend = weaviate_backend(weaviate_fake, unique_name("Types"))
    backend.upsert([Record(id=1, vector=np.ones(DIM, np.float32), payload={"n": 1}, version=1)])

    text = Record(id=2, vector=np.ones(DIM, np.float32), payload={"n": "one"}, version=1)
    with pytest.raises(BackendError, match="must keep one type"):
        backend.upsert([text])
    assert backend.count() == 1
    backend.close()


def test_weaviate_foreign_object_rejected(weaviate_fake):
    from weaviate.classes.data import DataObject

    backend = weaviate_backend(weaviate_fake, unique_name("Foreign"))
    collection = backend._collection
    collection.data.insert_many([DataObject(properties={"title": "x"}, vector=[1.0] * DIM)])

    with pytest.raises(BackendError, match="not written by vector-tiering"):
        backend.search(np.ones((1, DIM), np.float32), 1)
    backend.close()


# --- lazy imports -----------------------------------------------------------------------

CLIENT_MODULES = {
    "qdrant": "qdrant_client",
    "milvus": "pymilvus",
    "weaviate": "weaviate",
    "pinecone": "pinecone",
}


def test_import_tiering_loads_no_client():
    code = (
        "import sys, tiering, tiering.backend, tiering.adapters, tiering.adapters.memory\n"
        f"loaded = [m for m in {sorted(CLIENT_MODULES.values())!r} if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


@pytest.mark.parametrize("adapter", sorted(CLIENT_MODULES))
def test_missing_client_names_extra(adapter):
    # Setting a module to None in sys.modules makes importing it fail, as if uninstalled.
    code = (
        "import sys\n"
        f"sys.modules[{CLIENT_MODULES[adapter]!r}] = None\n"
        "try:\n"
        f"    import tiering.adapters.{adapter}\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"vector-tiering[{adapter}]" in result.stdout


def test_weaviate_uppercase_field_not_filterable(weaviate_fake):
    from tiering.errors import UnsupportedOperationError
    from tiering.filters import Eq

    backend = weaviate_backend(weaviate_fake, unique_name("Upper"))
    payload = {"Lang": "en", "lang": "de", "bad-name": 1}
    backend.upsert([Record(id=1, vector=np.ones(DIM, np.float32), payload=payload, version=1)])

    [fetched] = backend.fetch([1])
    [hits] = backend.search(np.ones((1, DIM), np.float32), 5, Eq("lang", "de"))

    assert dict(fetched.payload) == payload
    assert [h.id for h in hits] == [1]
    for field in ["Lang", "bad-name"]:
        with pytest.raises(UnsupportedOperationError, match=field):
            backend.search(np.ones((1, DIM), np.float32), 5, Eq(field, "en"))
    backend.close()
