"""The Weaviate backend, through weaviate-client v4.

One backend is one Weaviate collection with one unnamed, self-provided vector. The
tests run the real client against ``tests/fakes/weaviate_fake.py``, a local protocol
fake (REST and gRPC), not against Weaviate.

Ids: Weaviate object ids are UUIDs, so the object id is the deterministic uuid5 of
:func:`tiering.records.encode_id` (see :mod:`tiering.adapters._idmap`).

Properties of every object:

* ``_tiering_id``: the encoded id (``"i:5"``, ``"s:doc-1"``); ``_tiering_version``:
  the version as text, because gRPC sends numbers as 64-bit floats;
* ``_tiering_payload``: the whole payload as JSON, so it round-trips exactly;
* every top-level payload field that Weaviate can filter on (text, number, boolean,
  list of text, with a valid property name), created by Weaviate's auto-schema.

Scores: Weaviate reports distances (``cosine``: 1 - similarity, ``dot``: the negated
dot product, ``l2-squared``: the squared distance), which this adapter turns into the
project's convention.

Transport (weaviate-client 4.24): batch insert, near-vector search, fetch, listing,
batch delete and the count go over gRPC; schema calls over REST.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from tiering.adapters._idmap import as_vector, batched, id_to_uuid, prepare_vectors, translated_errors
from tiering.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    UnsupportedOperationError,
)
from tiering.filters import And, Eq, Filter, In, Not, Or, Range
from tiering.records import ID_KEY, VERSION_KEY, Hit, Id, Metric, Record, Vector, decode_id, encode_id

try:
    import grpc
    import httpx
    import weaviate
    import weaviate.exceptions as weaviate_errors
    from weaviate.classes.config import Configure, DataType, Property, Tokenization
    from weaviate.classes.config import VectorDistances as Distances
    from weaviate.classes.data import DataObject
    from weaviate.classes.init import AdditionalConfig, Timeout
    from weaviate.classes.query import Filter as WeaviateFilter
    from weaviate.classes.query import MetadataQuery
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "The Weaviate adapter needs weaviate-client. Install it with pip install 'vector-tiering[weaviate]'."
    ) from exc

logger = logging.getLogger(__name__)

PAYLOAD_KEY = "_tiering_payload"
"""Property with the JSON-encoded payload."""

DISTANCES = {Metric.COSINE: Distances.COSINE, Metric.DOT: Distances.DOT, Metric.L2: Distances.L2_SQUARED}

_BOOKKEEPING = [ID_KEY, VERSION_KEY, PAYLOAD_KEY]
# Weaviate accepts property names that are GraphQL names of up to 231 characters, and
# lowercases their first letter, so only names that already start lowercase keep their
# spelling.
_PROPERTY_NAME = re.compile(r"^[_a-z][_0-9A-Za-z]{0,230}$")
_RESERVED_NAMES = {"id", "_id", "_additional", "vector", "_vector"}
_NUMERIC_TYPES = {"number", "int", "number[]", "int[]"}
_TEXT_TYPES = {"text", "text[]"}
_NIL_UUID = "00000000-0000-0000-0000-000000000000"
_MAX_DELETE_IDS = 1000  # Weaviate's default QUERY_MAXIMUM_RESULTS is 10,000


def connect_weaviate(
    http_host: str,
    http_port: int,
    grpc_host: str,
    grpc_port: int,
    *,
    secure: bool = False,
    api_key: str | None = None,
    timeout_s: float = 30.0,
) -> weaviate.WeaviateClient:
    """Connect to Weaviate over REST and gRPC and check that it is ready.

    The client's own start-up checks are skipped because they also query PyPI for the
    newest client version; :meth:`weaviate.WeaviateClient.is_ready` is checked instead.

    Raises:
        ConfigurationError: the client rejects the addresses (for example equal ports).
        BackendUnavailableError: Weaviate cannot be reached or is not ready.
        BackendError: any other failure while connecting.
    """
    where = f"Weaviate at {http_host}:{http_port} (gRPC {grpc_host}:{grpc_port})"
    try:
        client = weaviate.connect_to_custom(
            http_host=http_host,
            http_port=http_port,
            http_secure=secure,
            grpc_host=grpc_host,
            grpc_port=grpc_port,
            grpc_secure=secure,
            auth_credentials=weaviate.classes.init.Auth.api_key(api_key) if api_key else None,
            additional_config=AdditionalConfig(
                timeout=Timeout(init=timeout_s, query=timeout_s, insert=timeout_s)
            ),
            skip_init_checks=True,
        )
        ready = client.is_ready()
    except ValueError as exc:
        # pydantic rejects invalid connection parameters before anything is sent.
        raise ConfigurationError(f"Invalid Weaviate connection settings for {where}: {exc}") from exc
    except Exception as exc:
        raise translate_error(exc, f"Connect to {where}") from exc
    if not ready:
        client.close()
        raise BackendUnavailableError(f"{where} is not ready. Check that the server has started.")
    return client


class WeaviateBackend:
    """One Weaviate collection with one unnamed, self-provided vector.

    Args:
        client: a connected ``WeaviateClient`` (see :func:`connect_weaviate`); :meth:`close`
            closes it.
        collection: the collection name; created when missing (Weaviate capitalises it).
        dim: vector dimension. Weaviate fixes the dimension with the first vector and
            does not report it, so it is not checked against an existing collection.
        metric: ``cosine``, ``dot`` or ``l2`` (Weaviate ``l2-squared``).
        batch_size: objects per batch insert and fetch request.

    Raises:
        ConfigurationError: the existing collection uses another distance or named vectors.
        BackendUnavailableError / BackendError: Weaviate failed while opening the collection.
    """

    def __init__(
        self,
        client: weaviate.WeaviateClient,
        collection: str,
        dim: int,
        metric: Metric | str = Metric.COSINE,
        *,
        batch_size: int = 500,
    ) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ConfigurationError(f"Invalid dim {dim!r}: use a positive integer.")
        self._client = client
        self._name = collection
        self._dim = dim
        self._metric = Metric.parse(metric)
        self._batch_size = batch_size
        self._property_types: dict[str, str] = {}
        self._closed = False
        with self._translate("open collection"):
            self._collection = self._ensure_collection()
            self._refresh_property_types()

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> Metric:
        return self._metric

    def _ensure_collection(self) -> Any:
        collections = self._client.collections
        if not collections.exists(self._name):
            # The top-level vector settings are deprecated in weaviate-client 4.24 in favour
            # of named vectors, but they are the form every server from 1.27 on accepts.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self._create_collection()
            logger.info("Created Weaviate collection %s (%s)", self._name, self._metric.value)
            return collections.get(self._name)

        collection = collections.get(self._name)
        self._check_existing(collection)
        return collection

    def _create_collection(self) -> None:
        self._client.collections.create(
            self._name,
            vectorizer_config=Configure.Vectorizer.none(),
            vector_index_config=Configure.VectorIndex.hnsw(distance_metric=DISTANCES[self._metric]),
            properties=[
                Property(name=ID_KEY, data_type=DataType.TEXT, tokenization=Tokenization.FIELD),
                Property(name=VERSION_KEY, data_type=DataType.TEXT, index_filterable=False),
                Property(
                    name=PAYLOAD_KEY,
                    data_type=DataType.TEXT,
                    index_filterable=False,
                    index_searchable=False,
                ),
            ],
        )

    def _check_existing(self, collection: Any) -> None:
        config = collection.config.get()
        index = config.vector_index_config
        if index is None:
            raise ConfigurationError(
                f"Weaviate collection {self._name!r} has named vectors, which this adapter "
                "does not support. Use a collection with one unnamed vector."
            )
        if index.distance_metric != DISTANCES[self._metric]:
            raise ConfigurationError(
                f"Weaviate collection {self._name!r} uses distance "
                f"{index.distance_metric.value!r}, but metric={self._metric.value!r} was "
                "requested. Use the collection's metric or another collection name."
            )

    def _refresh_property_types(self) -> None:
        config = self._collection.config.get(simple=True)
        self._property_types = {p.name: p.data_type.value for p in config.properties}

    def upsert(self, records: Sequence[Record]) -> None:
        for chunk in batched(records, self._batch_size):
            vectors = prepare_vectors(chunk, self._metric)
            objects = [
                DataObject(properties=to_properties(r), uuid=id_to_uuid(r.id), vector=v.tolist())
                for r, v in zip(chunk, vectors, strict=True)
            ]
            with self._translate("batch insert"):
                try:
                    result = self._collection.data.insert_many(objects)
                except weaviate_errors.WeaviateInsertManyAllFailedError as exc:
                    raise BackendError(self._rejected(len(objects), len(objects), exc)) from exc
            if result.has_errors:
                first = next(iter(result.errors.values()))
                raise BackendError(self._rejected(len(result.errors), len(objects), first.message))

    def _rejected(self, failed: int, total: int, example: object) -> str:
        return (
            f"Weaviate rejected {failed} of {total} objects in collection {self._name!r}, for "
            f"example: {example}. A payload field must keep one type (text, number, boolean) "
            "across records."
        )

    def search(self, queries: Vector, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self._dim)
        condition = self._to_filter(filter) if filter is not None else None
        results = []
        for row in queries:
            # NOTE: weaviate-client 4.24 retries a gRPC search that gets UNAVAILABLE five
            # times and sleeps 1, 2, 4, 8, 16 and 32 s on the way (63 s in all), so an
            # unreachable server takes about a minute to surface as BackendUnavailableError.
            with self._translate("near-vector search"):
                response = self._collection.query.near_vector(
                    near_vector=row.tolist(),
                    limit=k,
                    filters=condition,
                    return_metadata=MetadataQuery(distance=True),
                    return_properties=_BOOKKEEPING,
                )
            results.append([self._hit(obj) for obj in response.objects])
        return results

    def _hit(self, obj: Any) -> Hit:
        record_id, version, payload = from_properties(obj.properties, self._name)
        distance = float(obj.metadata.distance)
        score = 1.0 - distance if self._metric is Metric.COSINE else -distance
        return Hit(id=record_id, score=score, tier="hot", version=version, payload=payload)

    def _to_filter(self, node: Filter) -> Any:
        if any(name not in self._property_types for name in _filter_fields(node)):
            # Auto-schema adds properties as records arrive, so re-read the schema once.
            with self._translate("read schema"):
                self._refresh_property_types()
        return to_weaviate_filter(node, self._property_types)

    def fetch(self, ids: Sequence[Id]) -> list[Record]:
        found: dict[Id, Record] = {}
        for chunk in batched(list(ids), self._batch_size):
            uuids = [id_to_uuid(i) for i in chunk]
            with self._translate("fetch"):
                response = self._collection.query.fetch_objects(
                    filters=WeaviateFilter.by_id().contains_any(uuids),
                    limit=len(uuids),
                    include_vector=True,
                    return_properties=_BOOKKEEPING,
                )
            for obj in response.objects:
                record_id, version, payload = from_properties(obj.properties, self._name)
                found[record_id] = Record(
                    id=record_id,
                    vector=as_vector(obj.vector["default"], self._metric),
                    payload=payload,
                    version=version,
                )
        return [found[i] for i in ids if i in found]

    def delete(self, ids: Sequence[Id]) -> None:
        for chunk in batched(list(ids), _MAX_DELETE_IDS):
            uuids = [id_to_uuid(i) for i in chunk]
            with self._translate("batch delete"):
                self._collection.data.delete_many(where=WeaviateFilter.by_id().contains_any(uuids))

    def count(self) -> int:
        with self._translate("count"):
            result = self._collection.aggregate.over_all(total_count=True)
        return int(result.total_count or 0)

    def iter_ids(self, batch_size: int = 1000) -> Iterator[list[Id]]:
        after: uuid.UUID | None = None
        while True:
            with self._translate("list ids"):
                response = self._collection.query.fetch_objects(
                    limit=batch_size, after=after, return_properties=[ID_KEY]
                )
            if not response.objects:
                return
            yield [decode_id(obj.properties[ID_KEY]) for obj in response.objects]
            after = response.objects[-1].uuid

    def close(self) -> None:
        """Close the client. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._translate("close"):
            self._client.close()

    def _translate(self, operation: str) -> contextlib.AbstractContextManager[None]:
        return translated_errors(translate_error, f"Weaviate {operation} on {self._name!r}")


def to_properties(record: Record) -> dict[str, Any]:
    """Return the Weaviate properties of a record (see the module docstring)."""
    properties = {
        key: value for key, value in record.payload.items() if is_property_name(key) and _filterable(value)
    }
    properties[ID_KEY] = encode_id(record.id)
    properties[VERSION_KEY] = str(int(record.version))
    properties[PAYLOAD_KEY] = json.dumps(dict(record.payload), ensure_ascii=False)
    return properties


def from_properties(properties: Mapping[str, Any], collection: str) -> tuple[Id, int, dict]:
    """Return ``(id, version, payload)`` from properties :func:`to_properties` wrote.

    Raises:
        BackendError: the object was not written by this library.
    """
    if ID_KEY not in properties or PAYLOAD_KEY not in properties:
        raise BackendError(
            f"An object in Weaviate collection {collection!r} has no {ID_KEY!r} property, so "
            "it was not written by vector-tiering. Use a collection that only this library "
            "writes to."
        )
    payload = json.loads(properties[PAYLOAD_KEY])
    return decode_id(properties[ID_KEY]), int(properties.get(VERSION_KEY) or 0), payload


def is_property_name(key: str) -> bool:
    """Return whether a payload key can be a Weaviate property of the same name."""
    return bool(_PROPERTY_NAME.match(key)) and key not in _RESERVED_NAMES


def _filterable(value: Any) -> bool:
    if isinstance(value, str | bool):
        return True
    if isinstance(value, int | float):
        return math.isfinite(value)
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def translate_error(exc: Exception, context: str) -> BackendError:
    """Return the :mod:`tiering.errors` exception for a weaviate-client, gRPC or httpx error.

    Connection failures, timeouts, HTTP 429/5xx and gRPC UNAVAILABLE or
    DEADLINE_EXCEEDED become BackendUnavailableError; features the server lacks
    UnsupportedOperationError; anything else BackendError.
    """
    detail = f"{type(exc).__name__}: {exc}"
    unavailable = (
        weaviate_errors.WeaviateConnectionError,
        weaviate_errors.WeaviateGRPCUnavailableError,
        weaviate_errors.WeaviateTimeoutError,
        weaviate_errors.WeaviateStartUpError,
        httpx.TransportError,
        TimeoutError,
        ConnectionError,
    )
    if isinstance(exc, unavailable):
        return BackendUnavailableError(
            f"{context} failed: Weaviate could not be reached ({detail}). Check the REST and "
            "gRPC addresses and that the server is running."
        )
    if isinstance(exc, weaviate_errors.WeaviateUnsupportedFeatureError):
        return UnsupportedOperationError(f"{context} failed: {exc}")
    if isinstance(exc, weaviate_errors.UnexpectedStatusCodeError):
        status = exc.status_code
        if status in (408, 429) or status >= 500:
            return BackendUnavailableError(f"{context} failed with HTTP {status}: {exc}")
        return BackendError(f"{context} failed with HTTP {status}: {exc}")
    grpc_code = _grpc_code_name(exc)
    if grpc_code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return BackendUnavailableError(
            f"{context} failed: Weaviate's gRPC endpoint returned {grpc_code} ({detail})."
        )
    if grpc_code == "UNIMPLEMENTED":
        return UnsupportedOperationError(f"{context} failed: Weaviate does not support it.")
    return BackendError(f"{context} failed ({detail}).")


def _grpc_code_name(exc: BaseException) -> str | None:
    # weaviate-client wraps gRPC errors (WeaviateQueryError and others); walk the chain.
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, grpc.Call):
            return str(current.code().name)
        current = current.__cause__ or current.__context__
    return None


def _filter_fields(node: Filter) -> Iterator[str]:
    if isinstance(node, And | Or):
        for child in node.children:
            yield from _filter_fields(child)
    elif isinstance(node, Not):
        yield from _filter_fields(node.child)
    else:
        yield node.field


def to_weaviate_filter(node: Filter, property_types: Mapping[str, str]) -> Any:
    """Translate a :mod:`tiering.filters` tree into a weaviate-client ``Filter``.

    ``property_types`` maps property names to Weaviate data types. A leaf on a field
    the schema lacks, or with a value of another type, matches no record in
    :func:`tiering.filters.matches`. Weaviate would reject such a filter, so it becomes
    a condition no object meets: the object id equals the nil UUID.
    """
    if isinstance(node, And):
        return WeaviateFilter.all_of([to_weaviate_filter(c, property_types) for c in node.children])
    if isinstance(node, Or):
        return WeaviateFilter.any_of([to_weaviate_filter(c, property_types) for c in node.children])
    if isinstance(node, Not):
        return WeaviateFilter.not_(to_weaviate_filter(node.child, property_types))
    if isinstance(node, Eq | In | Range):
        _check_field(node.field)
    if isinstance(node, Eq):
        return _equal(node.field, node.value, property_types.get(node.field))
    if isinstance(node, In):
        data_type = property_types.get(node.field)
        leaves = [_equal(node.field, v, data_type) for v in node.values]
        return leaves[0] if len(leaves) == 1 else WeaviateFilter.any_of(leaves)
    if isinstance(node, Range):
        return _range(node, property_types.get(node.field))
    raise UnsupportedOperationError(f"Unknown filter node {node!r} for Weaviate.")


def _check_field(field: str) -> None:
    if not is_property_name(field):
        raise UnsupportedOperationError(
            f"Weaviate cannot filter on payload field {field!r}: filterable fields need "
            "a name of letters, digits and underscores that starts with a lowercase letter "
            "or an underscore. Rename the field in new records."
        )


def _never() -> Any:
    return WeaviateFilter.by_id().equal(_NIL_UUID)


def _equal(field: str, value: Any, data_type: str | None) -> Any:
    prop = WeaviateFilter.by_property(field)
    if data_type in _TEXT_TYPES and isinstance(value, str):
        return prop.equal(value)
    if data_type in ("boolean", "boolean[]") and isinstance(value, bool):
        return prop.equal(value)
    if data_type in _NUMERIC_TYPES and isinstance(value, int | float) and not isinstance(value, bool):
        if data_type.startswith("int"):
            return prop.equal(int(value)) if float(value).is_integer() else _never()
        return prop.equal(float(value))
    return _never()


def _range(node: Range, data_type: str | None) -> Any:
    if data_type not in _NUMERIC_TYPES:
        return _never()
    prop = WeaviateFilter.by_property(node.field)
    integer = data_type.startswith("int")
    leaves = []
    if node.gt is not None:
        leaves.append(prop.greater_than(math.floor(node.gt) if integer else float(node.gt)))
    if node.gte is not None:
        leaves.append(prop.greater_or_equal(math.ceil(node.gte) if integer else float(node.gte)))
    if node.lt is not None:
        leaves.append(prop.less_than(math.ceil(node.lt) if integer else float(node.lt)))
    if node.lte is not None:
        leaves.append(prop.less_or_equal(math.floor(node.lte) if integer else float(node.lte)))
    if not leaves:
        leaves.append(prop.greater_or_equal(-math.inf if not integer else -(2**63)))
    return leaves[0] if len(leaves) == 1 else WeaviateFilter.all_of(leaves)
