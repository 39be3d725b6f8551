"""Open backends and cold stores from the URLs the command line and the service accept.

Backend URLs:

* ``qdrant+local:///path/to/dir`` or ``qdrant+local://:memory:``: qdrant-client local mode;
* ``qdrant://host:6333`` / ``qdrant+https://host:6333``: a Qdrant server (API key from
  ``QDRANT_API_KEY``);
* ``milvus:///path/to/file.db``: Milvus Lite; ``milvus://host:19530``: a Milvus server.

Cold store locations: a folder path, or ``s3://bucket/prefix?endpoint_url=...`` (see
:meth:`tiering.s3store.S3Config.from_url`; credentials come from boto3's chain).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

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
    raise ConfigurationError(
        f"Unknown backend URL {url!r}. Use qdrant+local:///dir, qdrant://host:6333, "
        "milvus:///file.db or milvus://host:19530."
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
        from pymilvus import MilvusClient

        from tiering.adapters.milvus import MilvusBackend
    except ImportError as exc:
        raise ConfigurationError("Milvus needs pymilvus: pip install 'vector-tiering[milvus]'.") from exc
    client = MilvusClient(path) if not host else MilvusClient(uri=f"http://{host}", timeout=30)
    return MilvusBackend(client, collection, dim, metric)


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
