"""Open backends and cold stores from the URLs the command line and the service accept.

Backend URLs:

* ``qdrant+local:///path/to/dir`` or ``qdrant+local://:memory:``: qdrant-client local mode;
* ``qdrant://host:6333`` / ``qdrant+https://host:6333``: a Qdrant server (API key from
  ``QDRANT_API_KEY``);
* ``milvus:///path/to/file.db``: Milvus Lite; ``milvus://host:19530``: a Milvus server
  (token from ``MILVUS_TOKEN``);
* ``weaviate://host:8080?grpc_port=50051`` (``weaviate+https`` for TLS): a Weaviate
  server (API key from ``WEAVIATE_API_KEY``);
* ``pinecone+https://index-host?namespace=docs`` (``pinecone+http`` for Pinecone Local):
  one namespace of a Pinecone index (API key from ``PINECONE_API_KEY``, required for
  ``pinecone+https``).

Cold store locations: a folder path, or ``s3://bucket/prefix?endpoint_url=...`` (see
:meth:`tiering.s3store.S3Config.from_url`; credentials come from boto3's chain).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import ParseResult, parse_qs, urlparse

from tiering.backend import Backend
from tiering.errors import ConfigurationError
from tiering.objectstore import LocalFolderStore, ObjectStore
from tiering.records import Metric


def open_backend_url(url: str, collection: str, dim: int, metric: Metric | str) -> Backend:
    """Return an adapter for ``collection`` at ``url`` (created if missing).

    Raises:
        ConfigurationError: the URL scheme is unknown or its client is not installed.
    """
    parsed = urlparse(url)
    metric = Metric.parse(metric)
    if parsed.scheme in ("qdrant", "qdrant+http", "qdrant+https", "qdrant+local"):
        return _qdrant(parsed.scheme, url, parsed.netloc, parsed.path, collection, dim, metric)
    if parsed.scheme == "milvus":
        return _milvus(parsed.netloc, parsed.path, collection, dim, metric)
    if parsed.scheme in ("weaviate", "weaviate+https"):
        return _weaviate(parsed, collection, dim, metric)
    if parsed.scheme in ("pinecone+http", "pinecone+https"):
        return _pinecone(parsed, dim, metric)
    raise ConfigurationError(
        f"Unknown backend URL {url!r}. Use qdrant+local:///dir, qdrant://host:6333, "
        "milvus:///file.db, milvus://host:19530, weaviate://host:8080 or pinecone+https://host."
    )


def _qdrant(
    scheme: str, url: str, host: str, path: str, collection: str, dim: int, metric: Metric
) -> Backend:
    try:
        from qdrant_client import QdrantClient

        from tiering.adapters.qdrant import QdrantBackend
    except ImportError as exc:
        raise ConfigurationError("Qdrant needs qdrant-client: pip install 'vector-tiering[qdrant]'.") from exc
    if scheme == "qdrant+local":
        client = QdrantClient(":memory:") if host == ":memory:" else QdrantClient(path=path)
    else:
        http_scheme = "https" if scheme == "qdrant+https" else "http"
        client = QdrantClient(
            url=f"{http_scheme}://{host}", api_key=os.environ.get("QDRANT_API_KEY"), timeout=30
        )
    return QdrantBackend(client, collection, dim, metric)


def _milvus(host: str, path: str, collection: str, dim: int, metric: Metric) -> Backend:
    try:
        from tiering.adapters.milvus import MilvusBackend, connect_milvus
    except ImportError as exc:
        raise ConfigurationError("Milvus needs pymilvus: pip install 'vector-tiering[milvus]'.") from exc
    if not host:
        return MilvusBackend(connect_milvus(path), collection, dim, metric, in_process=True)
    client = connect_milvus(f"http://{host}", token=os.environ.get("MILVUS_TOKEN", ""), timeout_s=30)
    return MilvusBackend(client, collection, dim, metric)


def _weaviate(parsed: ParseResult, collection: str, dim: int, metric: Metric) -> Backend:
    try:
        from tiering.adapters.weaviate import WeaviateBackend, connect_weaviate
    except ImportError as exc:
        raise ConfigurationError(
            "Weaviate needs weaviate-client: pip install 'vector-tiering[weaviate]'."
        ) from exc
    options = parse_qs(parsed.query)
    host = parsed.hostname or "127.0.0.1"
    client = connect_weaviate(
        host,
        parsed.port or 8080,
        options.get("grpc_host", [host])[-1],
        int(options.get("grpc_port", ["50051"])[-1]),
        secure=parsed.scheme == "weaviate+https",
        api_key=os.environ.get("WEAVIATE_API_KEY"),
    )
    return WeaviateBackend(client, collection, dim, metric)


def _pinecone(parsed: ParseResult, dim: int, metric: Metric) -> Backend:
    try:
        from tiering.adapters.pinecone import PineconeBackend, connect_pinecone
    except ImportError as exc:
        raise ConfigurationError(
            "Pinecone needs the pinecone SDK: pip install 'vector-tiering[pinecone]'."
        ) from exc
    scheme = "https" if parsed.scheme == "pinecone+https" else "http"
    namespace = parse_qs(parsed.query).get("namespace", [""])[-1]
    api_key = os.environ.get("PINECONE_API_KEY", "")
    if not api_key and scheme == "https":
        raise ConfigurationError(
            "PINECONE_API_KEY is not set. Set it to the API key of the Pinecone project."
        )
    # Pinecone Local (plain HTTP) accepts any key, and its docs use "pclocal".
    index = connect_pinecone(f"{scheme}://{parsed.netloc}", api_key or "pclocal")
    return PineconeBackend(index, dim, metric, namespace=namespace)


def open_cold_store(location: str | Path) -> ObjectStore:
    """Return the object store at a folder path or an ``s3://`` URL.

    Raises:
        ConfigurationError: the URL is invalid or boto3 is not installed.
    """
    text = str(location)
    if text.startswith("s3://"):
        try:
            from tiering.s3store import S3Config, S3ObjectStore
        except ImportError as exc:
            raise ConfigurationError("S3 needs boto3: pip install 'vector-tiering[s3]'.") from exc
        return S3ObjectStore(S3Config.from_url(text))
    if "://" in text:
        raise ConfigurationError(
            f"Unknown cold store location {text!r}. Use a folder path or s3://bucket/prefix."
        )
    return LocalFolderStore(text)
