"""Open the backend, the cold tier's object store and the TieredStore that the settings name."""

from __future__ import annotations

import logging
import os

from tiering.backend import Backend
from tiering.connect import open_backend_url
from tiering.errors import ConfigurationError
from tiering.objectstore import LocalFolderStore, ObjectStore
from tiering.records import Metric
from tiering.service.settings import ServiceSettings
from tiering.store import TieredStore

logger = logging.getLogger(__name__)


def open_backend(settings: ServiceSettings) -> Backend:
    """Return the adapter of the configured collection, created when missing.

    Raises:
        ConfigurationError: the client library is missing or the collection does not fit.
        BackendUnavailableError: the vector store cannot be reached.
    """
    metric = Metric.parse(settings.metric)
    if settings.backend_url:
        # Any store that tiering.connect opens, Weaviate and Pinecone included.
        return open_backend_url(settings.backend_url, settings.collection, settings.dim, metric)
    if settings.backend == "memory":
        from tiering.adapters.memory import InMemoryBackend

        return InMemoryBackend(settings.dim, metric)
    if settings.backend == "qdrant":
        try:
            from qdrant_client import QdrantClient

            from tiering.adapters.qdrant import QdrantBackend
        except ImportError as exc:
            raise ConfigurationError(
                "The qdrant backend needs qdrant-client: pip install 'vector-tiering[qdrant]'."
            ) from exc
        timeout_s = max(1, round(settings.backend_timeout_s))
        if settings.qdrant_url:
            client = QdrantClient(
                url=settings.qdrant_url, api_key=settings.qdrant_api_key or None, timeout=timeout_s
            )
        elif settings.qdrant_path == ":memory:":
            client = QdrantClient(":memory:")
        else:
            client = QdrantClient(path=settings.qdrant_path)
        return QdrantBackend(client, settings.collection, settings.dim, metric, timeout_s=timeout_s)
    try:
        from pymilvus import MilvusClient

        from tiering.adapters.milvus import MilvusBackend
    except ImportError as exc:
        raise ConfigurationError(
            "The milvus backend needs pymilvus and milvus-lite: pip install 'vector-tiering[milvus]'."
        ) from exc
    milvus = MilvusClient(settings.milvus_uri, timeout=settings.backend_timeout_s)
    return MilvusBackend(
        milvus,
        settings.collection,
        settings.dim,
        metric,
        timeout_s=settings.backend_timeout_s,
        in_process=settings.milvus_uri.endswith(".db"),
    )


def open_object_store(settings: ServiceSettings) -> ObjectStore:
    """Return the object store of the cold tier: S3 when ``s3_url`` is set, else a local folder.

    Raises:
        ConfigurationError: an S3 setting is invalid or boto3 is missing.
        ObjectStoreError: the bucket cannot be reached or ignores conditional writes.
    """
    if not settings.s3_url:
        return LocalFolderStore(settings.cold_dir)
    try:
        from tiering.s3store import S3Config, S3ObjectStore
    except ImportError as exc:
        raise ConfigurationError("An S3 cold tier needs boto3: pip install 'vector-tiering[s3]'.") from exc
    # The other TIERING_S3_* variables (endpoint, region, storage class) come from the environment.
    config = S3Config.from_env({**os.environ, "TIERING_S3_URL": settings.s3_url})
    return S3ObjectStore(config)


def open_store(settings: ServiceSettings) -> TieredStore:
    """Open the backend and the cold tier and return a TieredStore over them.

    The store closes the backend when it is closed. Raises ConfigurationError,
    BackendError or ObjectStoreError; nothing stays open after a failure.
    """
    backend = open_backend(settings)
    try:
        object_store = open_object_store(settings)
        store = TieredStore(backend, object_store, config=settings.tiering_config())
    except BaseException:
        backend.close()
        raise
    logger.info(
        "Opened %s collection %r (%d-d, %s) with the cold tier in %r: %d cold vectors",
        settings.backend, settings.collection, settings.dim, settings.metric, object_store, len(store.cold),
    )
    return store
