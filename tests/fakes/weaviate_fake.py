"""A FAKE Weaviate server for tests: REST and gRPC on 127.0.0.1, not Weaviate.

It serves what weaviate-client 4.24 calls for the Weaviate adapter, with the gRPC
stubs the client package ships (``weaviate.proto.v1``):

* REST ``/v1``: ``GET meta`` (reports version 1.32.0), ``.well-known/ready``,
  ``GET/POST/DELETE schema`` (a created class is completed with the defaults a
  server reports, so the client can parse its configuration) and
  ``DELETE objects/{class}/{uuid}``.
* gRPC ``weaviate.v1.Weaviate``: ``BatchObjects`` (insert or replace, with auto-schema
  for new properties), ``Search`` (brute-force near-vector search, fetch with filters,
  cursor with ``after``), ``BatchDelete`` and ``Aggregate`` (object count only), plus
  ``grpc.health.v1.Health/Check``.
* Distances as Weaviate reports them: ``cosine`` = 1 - cosine similarity,
  ``dot`` = negative dot product, ``l2-squared`` = squared Euclidean distance.
* Filters: And, Or, Not, Equal, NotEqual, ContainsAny, GreaterThan(Equal),
  LessThan(Equal) on properties and on ``_id``. A filter on a property missing from
  the schema, or with a value of the wrong type, fails with INVALID_ARGUMENT as
  Weaviate does. An object without the property matches no comparison.

Not implemented: text tokenization (Equal compares whole strings, where Weaviate's
default ``word`` tokenization matches single words), HNSW (search is exact),
named vectors beyond reading them, references, multi-tenancy, BM25/hybrid,
GraphQL, consistency levels, authentication and every REST path not listed above.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Mapping
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

VERSION = "1.32.0"
_OBJECT_PATH = re.compile(r"^/v1/objects/([^/]+)/([0-9a-fA-F-]{36})$")
_SCHEMA_PATH = re.compile(r"^/v1/schema/([^/]+)$")
_NUMERIC_TYPES = {"number", "int", "number[]", "int[]"}
_TEXT_TYPES = {"text", "text[]", "uuid", "string"}


class FakeError(Exception):
    """A request the fake rejects, with a gRPC status and an HTTP status."""

    def __init__(self, message: str, http_status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class WeaviateFake:
    """A fake Weaviate on 127.0.0.1 (REST and gRPC ports). Call stop() when done."""

    def __init__(self) -> None:
        self.classes: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}
        self.lock = threading.RLock()
        self.calls: list[str] = []

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _make_rest_handler(self))
        self._http.daemon_threads = True
        self._http_thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)
        self._http_thread.start()

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(self), self._grpc)
        self._grpc.add_generic_rpc_handlers((_health_handler(),))
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()

    @property
    def http_port(self) -> int:
        return int(self._http.server_address[1])

    def stop(self) -> None:
        """Stop both servers. Idempotent."""
        self._grpc.stop(grace=None)
        self._http.shutdown()
        self._http.server_close()

    # --- schema -----------------------------------------------------------------------

    def create_class(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _class_name(str(body.get("class", "")))
        with self.lock:
            if name in self.classes:
                raise FakeError(f"class name {name!r} already exists")
            schema = _complete_class(body, name)
            self.classes[name] = schema
            self.objects[name] = {}
            return copy.deepcopy(schema)

    def get_class(self, name: str) -> dict[str, Any]:
        with self.lock:
            schema = self.classes.get(_class_name(name))
            if schema is None:
                raise FakeError(f"class {name!r} not found", http_status=404)
            return copy.deepcopy(schema)

    def delete_class(self, name: str) -> None:
        with self.lock:
            self.classes.pop(_class_name(name), None)
            self.objects.pop(_class_name(name), None)

    def _space(self, name: str) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, dict]]]:
        key = _class_name(name)
        if key not in self.classes:
            raise FakeError(f"could not find class {name} in schema")
        return self.classes[key], self.objects[key]

    # --- objects ----------------------------------------------------------------------

    def insert(self, obj: batch_pb2.BatchObject) -> None:
        vector = _object_vector(obj)
        properties = _decode_batch_properties(obj.properties)
        with self.lock:
            schema, space = self._space(obj.collection)
            existing = next(iter(space.values()), None)
            if existing is not None and existing[0].shape != vector.shape:
                raise FakeError(
                    f"new node has a vector with length {vector.shape[0]}. Existing nodes have "
                    f"vectors with length {existing[0].shape[0]}"
                )
            _auto_schema(schema, properties)
            space[obj.uuid] = (vector, properties)

    def delete_object(self, class_name: str, object_id: str) -> bool:
        with self.lock:
            _, space = self._space(class_name)
            return space.pop(object_id.lower(), None) is not None

    def select(self, class_name: str, filters: base_pb2.Filters | None) -> list[tuple[str, Any]]:
        """Return ``(uuid, (vector, properties))`` pairs matching ``filters``, by uuid."""
        with self.lock:
            schema, space = self._space(class_name)
            items = sorted(space.items())
            types = _property_types(schema)
        if filters is None:
            return items
        wanted = _id_lookup(filters)
        if wanted is not None:
            return [item for item in items if item[0] in wanted]
        return [item for item in items if _matches(filters, item[0], item[1][1], types)]

    def distance(self, schema_name: str, query: np.ndarray, vector: np.ndarray) -> float:
        metric = self.get_class(schema_name)["vectorIndexConfig"]["distance"]
        q = query.astype(np.float64)
        v = vector.astype(np.float64)
        if metric == "l2-squared":
            return float((q - v) @ (q - v))
        if metric == "dot":
            return float(-(q @ v))
        norms = float(np.linalg.norm(q) * np.linalg.norm(v))
        return 1.0 - (float(q @ v) / norms if norms else 0.0)


def _class_name(name: str) -> str:
    return name[:1].upper() + name[1:]


def _complete_class(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    schema = copy.deepcopy(dict(body))
    schema["class"] = name
    schema.setdefault("vectorizer", "none")
    schema.setdefault("vectorIndexType", "hnsw")
    index = schema.setdefault("vectorIndexConfig", {})
    hnsw_defaults = {
        "skip": False,
        "cleanupIntervalSeconds": 300,
        "maxConnections": 32,
        "efConstruction": 128,
        "ef": -1,
        "dynamicEfMin": 100,
        "dynamicEfMax": 500,
        "dynamicEfFactor": 8,
        "vectorCacheMaxObjects": 1000000000000,
        "flatSearchCutoff": 40000,
        "distance": "cosine",
        "filterStrategy": "sweeping",
    }
    for key, value in hnsw_defaults.items():
        index.setdefault(key, value)
    schema.setdefault(
        "invertedIndexConfig",
        {
            "bm25": {"b": 0.75, "k1": 1.2},
            "cleanupIntervalSeconds": 60,
            "stopwords": {"preset": "en", "additions": None, "removals": None},
        },
    )
    schema.setdefault(
        "replicationConfig",
        {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"},
    )
    schema.setdefault(
        "shardingConfig",
        {
            "virtualPerPhysical": 128,
            "desiredCount": 1,
            "actualCount": 1,
            "desiredVirtualCount": 128,
            "actualVirtualCount": 128,
            "key": "_id",
            "strategy": "hash",
            "function": "murmur3",
        },
    )
    schema.setdefault(
        "multiTenancyConfig",
        {"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False},
    )
    schema["properties"] = [_complete_property(p) for p in schema.get("properties") or []]
    return schema


def _complete_property(prop: Mapping[str, Any]) -> dict[str, Any]:
    completed = dict(prop)
    completed["name"] = _property_name(str(completed["name"]))
    text = completed["dataType"][0] in ("text", "text[]")
    completed.setdefault("indexFilterable", True)
    completed.setdefault("indexSearchable", text)
    completed.setdefault("indexRangeFilters", False)
    if text:
        completed.setdefault("tokenization", "word")
    return completed


def _auto_schema(schema: dict[str, Any], properties: Mapping[str, Any]) -> None:
    known = _property_types(schema)
    for name, value in properties.items():
        if value is None:
            continue
        data_type = _infer_type(value)
        if name not in known:
            schema["properties"].append(_complete_property({"name": name, "dataType": [data_type]}))
            known[name] = data_type
        elif not _compatible(known[name], data_type):
            raise FakeError(f"invalid {known[name]} property {name!r}: got a value of type {data_type}")


def _infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        inner = _infer_type(value[0]) if value else "text"
        return f"{inner}[]"
    return "object"


def _compatible(declared: str, actual: str) -> bool:
    if declared == actual:
        return True
    return {declared, actual} <= _NUMERIC_TYPES and declared.endswith("[]") == actual.endswith("[]")


def _property_types(schema: Mapping[str, Any]) -> dict[str, str]:
    return {p["name"]: p["dataType"][0] for p in schema.get("properties") or []}


def _object_vector(obj: batch_pb2.BatchObject) -> np.ndarray:
    if obj.vector_bytes:
        return np.frombuffer(obj.vector_bytes, dtype="<f4").copy()
    if obj.vectors:
        return np.frombuffer(obj.vectors[0].vector_bytes, dtype="<f4").copy()
    if obj.vector:
        return np.asarray(obj.vector, dtype=np.float32)
    raise FakeError("the fake needs a vector on every object (no vectorizer runs here)")


def _decode_batch_properties(props: batch_pb2.BatchObject.Properties) -> dict[str, Any]:
    decoded: dict[str, Any] = {}
    for name, value in props.non_ref_properties.fields.items():
        key = _property_name(name)
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            decoded[key] = value.number_value
        elif kind == "string_value":
            decoded[key] = value.string_value
        elif kind == "bool_value":
            decoded[key] = value.bool_value
        elif kind == "null_value":
            decoded[key] = None
        else:
            raise FakeError(f"the fake does not store {kind} property {key!r}")
    arrays = [
        *props.text_array_properties,
        *props.int_array_properties,
        *props.boolean_array_properties,
    ]
    for array in arrays:
        decoded[_property_name(array.prop_name)] = list(array.values)
    for numbers in props.number_array_properties:
        values = list(numbers.values) or np.frombuffer(numbers.values_bytes, dtype="<f8").tolist()
        decoded[_property_name(numbers.prop_name)] = values
    for name in props.empty_list_props:
        decoded[_property_name(name)] = []
    return decoded


def _property_name(name: str) -> str:
    """Return ``name`` with its first letter lowercased, as Weaviate stores property names."""
    return name[:1].lower() + name[1:]


def _id_lookup(node: base_pb2.Filters) -> set[str] | None:
    """Return the uuids of a plain ``_id`` Equal or ContainsAny filter, else None.

    A set lookup keeps fetch and delete of thousands of ids fast in the fake.
    """
    operator = base_pb2.Filters.Operator.Name(node.operator)
    if operator not in ("OPERATOR_EQUAL", "OPERATOR_CONTAINS_ANY"):
        return None
    if _target_name(node) != "_id":
        return None
    kind, value = _filter_value(node)
    if kind not in ("value_text", "value_text_array"):
        return None
    values = value if isinstance(value, list) else [value]
    return {str(v).lower() for v in values}


def _target_name(node: base_pb2.Filters) -> str:
    if node.HasField("target"):
        return str(node.target.property)
    return str(node.on[0]) if node.on else ""


def _filter_value(node: base_pb2.Filters) -> tuple[str, Any]:
    kind = node.WhichOneof("test_value")
    if kind in ("value_text_array", "value_int_array", "value_number_array", "value_boolean_array"):
        return kind, list(getattr(node, kind).values)
    if kind is None:
        raise FakeError("filter has no value")
    return kind, getattr(node, kind)


def _matches(node: base_pb2.Filters, object_id: str, props: Mapping[str, Any], types: dict) -> bool:
    operator = base_pb2.Filters.Operator.Name(node.operator)
    if operator == "OPERATOR_AND":
        return all(_matches(child, object_id, props, types) for child in node.filters)
    if operator == "OPERATOR_OR":
        return any(_matches(child, object_id, props, types) for child in node.filters)
    if operator == "OPERATOR_NOT":
        return not _matches(node.filters[0], object_id, props, types)

    name = _target_name(node)
    kind, value = _filter_value(node)
    if name == "_id":
        stored: Any = object_id
        declared = "uuid"
    else:
        if name not in types:
            raise FakeError(f"no such prop with name '{name}' found in class in the schema")
        declared = types[name]
        stored = props.get(name)
    _check_value_type(name, declared, kind)
    if stored is None:
        return False
    members = stored if isinstance(stored, list) else [stored]
    values = value if isinstance(value, list) else [value]
    if operator == "OPERATOR_EQUAL":
        return any(_same(m, values[0]) for m in members)
    if operator == "OPERATOR_NOT_EQUAL":
        return not any(_same(m, values[0]) for m in members)
    if operator == "OPERATOR_CONTAINS_ANY":
        return any(_same(m, v) for m in members for v in values)
    comparisons = {
        "OPERATOR_GREATER_THAN": lambda a, b: a > b,
        "OPERATOR_GREATER_THAN_EQUAL": lambda a, b: a >= b,
        "OPERATOR_LESS_THAN": lambda a, b: a < b,
        "OPERATOR_LESS_THAN_EQUAL": lambda a, b: a <= b,
    }
    if operator not in comparisons:
        raise FakeError(f"the fake does not support filter operator {operator}")
    return any(comparisons[operator](m, values[0]) for m in members)


def _check_value_type(name: str, declared: str, kind: str) -> None:
    numeric = kind in ("value_int", "value_number", "value_int_array", "value_number_array")
    text = kind in ("value_text", "value_text_array")
    boolean = kind in ("value_boolean", "value_boolean_array")
    ok = (
        (declared in _NUMERIC_TYPES and numeric)
        or (declared in _TEXT_TYPES and text)
        or (declared in ("boolean", "boolean[]") and boolean)
    )
    if not ok:
        raise FakeError(f"data type filter cannot use {kind} on property {name!r} ({declared})")


def _same(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    if isinstance(stored, str) and isinstance(wanted, str):
        return stored.lower() == wanted.lower() if _looks_like_uuid(stored) else stored == wanted
    return bool(stored == wanted)


def _looks_like_uuid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4


def _to_value(value: Any) -> properties_pb2.Value:
    if isinstance(value, bool):
        return properties_pb2.Value(bool_value=value)
    if isinstance(value, int | float):
        return properties_pb2.Value(number_value=float(value))
    if isinstance(value, str):
        return properties_pb2.Value(text_value=value)
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            texts = properties_pb2.TextValues(values=value)
            return properties_pb2.Value(list_value=properties_pb2.ListValue(text_values=texts))
        if all(isinstance(v, bool) for v in value):
            bools = properties_pb2.BoolValues(values=value)
            return properties_pb2.Value(list_value=properties_pb2.ListValue(bool_values=bools))
        numbers = np.asarray(value, dtype="<f8").tobytes()
        return properties_pb2.Value(
            list_value=properties_pb2.ListValue(number_values=properties_pb2.NumberValues(values=numbers))
        )
    raise FakeError(f"the fake cannot return a property value of type {type(value).__name__}")


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, fake: WeaviateFake) -> None:
        self.fake = fake

    def BatchObjects(self, request, context):
        self.fake.calls.append("grpc BatchObjects")
        errors = []
        for index, obj in enumerate(request.objects):
            try:
                self.fake.insert(obj)
            except FakeError as exc:
                errors.append(batch_pb2.BatchObjectsReply.BatchError(index=index, error=exc.message))
        return batch_pb2.BatchObjectsReply(took=0.0, errors=errors)

    def Search(self, request, context):
        self.fake.calls.append("grpc Search")
        try:
            return self._search(request)
        except FakeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)

    def _search(self, request: search_get_pb2.SearchRequest) -> search_get_pb2.SearchReply:
        filters = request.filters if request.HasField("filters") else None
        items = self.fake.select(request.collection, filters)
        distances: dict[str, float] = {}
        if request.HasField("near_vector"):
            query = _query_vector(request.near_vector)
            for object_id, (vector, _) in items:
                distances[object_id] = self.fake.distance(request.collection, query, vector)
            items.sort(key=lambda item: distances[item[0]])
        elif request.after:
            items = [item for item in items if item[0] > request.after.lower()]
        limit = request.limit or 10
        results = [
            self._result(request, object_id, vector, props, distances.get(object_id))
            for object_id, (vector, props) in items[:limit]
        ]
        return search_get_pb2.SearchReply(took=0.0, results=results)

    def _result(self, request, object_id, vector, props, distance) -> search_get_pb2.SearchResult:
        metadata = search_get_pb2.MetadataResult(id=object_id, id_as_bytes=uuid.UUID(object_id).bytes)
        if distance is not None and request.metadata.distance:
            metadata.distance = distance
            metadata.distance_present = True
        if request.metadata.vector:
            metadata.vector_bytes = np.asarray(vector, dtype="<f4").tobytes()
        wanted = request.properties
        if wanted.return_all_nonref_properties:
            names = list(props)
        else:
            names = [n for n in wanted.non_ref_properties if n in props]
        fields = {n: _to_value(props[n]) for n in names if props.get(n) is not None}
        properties = search_get_pb2.PropertiesResult(non_ref_props=properties_pb2.Properties(fields=fields))
        return search_get_pb2.SearchResult(properties=properties, metadata=metadata)

    def BatchDelete(self, request, context):
        self.fake.calls.append("grpc BatchDelete")
        try:
            items = self.fake.select(request.collection, request.filters)
            if not request.dry_run:
                for object_id, _ in items:
                    self.fake.delete_object(request.collection, object_id)
        except FakeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        return batch_delete_pb2.BatchDeleteReply(
            took=0.0, failed=0, matches=len(items), successful=len(items)
        )

    def Aggregate(self, request, context):
        self.fake.calls.append("grpc Aggregate")
        try:
            filters = request.filters if request.HasField("filters") else None
            count = len(self.fake.select(request.collection, filters))
        except FakeError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
        single = aggregate_pb2.AggregateReply.Single(objects_count=count)
        return aggregate_pb2.AggregateReply(took=0.0, single_result=single)


def _query_vector(near: Any) -> np.ndarray:
    if near.vector_bytes:
        return np.frombuffer(near.vector_bytes, dtype="<f4")
    if near.vectors:
        return np.frombuffer(near.vectors[0].vector_bytes, dtype="<f4")
    return np.asarray(near.vector, dtype=np.float32)


def _health_handler() -> grpc.GenericRpcHandler:
    def check(request, context):
        return health_weaviate_pb2.WeaviateHealthCheckResponse(
            status=health_weaviate_pb2.WeaviateHealthCheckResponse.SERVING
        )

    handler = grpc.unary_unary_rpc_method_handler(
        check,
        request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
        response_serializer=health_weaviate_pb2.WeaviateHealthCheckResponse.SerializeToString,
    )
    return grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler})


def _make_rest_handler(fake: WeaviateFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes; Nagle's algorithm would delay each reply.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_DELETE(self) -> None:
            self._dispatch("DELETE")

        def _dispatch(self, method: str) -> None:
            path = self.path.split("?")[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.calls.append(f"{method} {path}")
            try:
                status, body = self._route(method, path, raw)
            except FakeError as exc:
                status, body = exc.http_status, {"error": [{"message": exc.message}]}
            self._send(status, body)

        def _route(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
            if method == "GET" and path == "/v1/meta":
                return 200, {
                    "hostname": f"http://127.0.0.1:{fake.http_port}",
                    "version": VERSION,
                    "modules": {},
                    "grpcMaxMessageSize": 104858000,
                }
            if method == "GET" and path in ("/v1/.well-known/ready", "/v1/.well-known/live"):
                return 200, None
            if method == "GET" and path == "/v1/schema":
                with fake.lock:
                    return 200, {"classes": [copy.deepcopy(c) for c in fake.classes.values()]}
            if method == "POST" and path == "/v1/schema":
                return 200, fake.create_class(json.loads(raw))
            schema_match = _SCHEMA_PATH.match(path)
            if schema_match and method == "GET":
                return 200, fake.get_class(schema_match.group(1))
            if schema_match and method == "DELETE":
                fake.delete_class(schema_match.group(1))
                return 200, None
            object_match = _OBJECT_PATH.match(path)
            if object_match and method == "DELETE":
                found = fake.delete_object(object_match.group(1), object_match.group(2))
                return (204, None) if found else (404, None)
            raise FakeError(f"the fake does not serve {method} {path}", http_status=404)

        def _send(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if data:
                self.wfile.write(data)

    return Handler
