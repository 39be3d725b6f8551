"""A FAKE Pinecone data plane for tests: a small HTTP server, not Pinecone.

It serves the REST paths the ``pinecone`` SDK (10.2) calls on an index host, on
127.0.0.1 in a background thread, for one serverless-style index of a fixed dimension
and metric:

* ``POST /vectors/upsert``, ``GET /vectors/fetch``, ``POST /vectors/delete`` (by ids or
  ``deleteAll``; delete by filter is rejected with 400 as serverless indexes do),
  ``POST /query`` (brute force, by vector only), ``POST /describe_index_stats``,
  ``GET /vectors/list`` (ids in order, paginated).
* Scores as Pinecone documents them: cosine similarity, dot product, and the squared
  Euclidean distance for ``euclidean`` (lower is closer).
* Metadata filters with ``$eq $ne $gt $gte $lt $lte $in $nin $exists $and $or``. An
  equality on a list of strings matches when an element matches. A field the record
  lacks matches only ``{"$exists": false}``.
* Metadata values must be strings, numbers, booleans or lists of strings; anything
  else is rejected with 400, as Pinecone does.

Not implemented: sparse vectors, query by id, update, fetch by metadata, imports,
namespaces API, integrated inference, read-after-write lag, request size limits,
authentication (any ``Api-Key`` is accepted) and the control plane.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

METRICS = ("cosine", "dotproduct", "euclidean")


class FakeRequestError(Exception):
    """A request the fake rejects; becomes an HTTP error response."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class PineconeFake:
    """A fake Pinecone index host on 127.0.0.1. Use as a context manager or call stop()."""

    def __init__(self, dimension: int, metric: str = "cosine") -> None:
        if metric not in METRICS:
            raise ValueError(f"Unknown Pinecone metric {metric!r}; use one of {METRICS}.")
        self.dimension = dimension
        self.metric = metric
        self.namespaces: dict[str, dict[str, tuple[np.ndarray, dict[str, Any]]]] = {}
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.fail_statuses: list[int] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """Base URL to pass as ``Index(host=...)``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        """Stop serving and close the listening socket. Idempotent."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> PineconeFake:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- operations -------------------------------------------------------------------

    def upsert(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = body.get("namespace") or ""
        vectors = body.get("vectors") or []
        rows = []
        for item in vectors:
            values = np.asarray(item.get("values") or [], dtype=np.float32)
            if values.shape != (self.dimension,):
                raise FakeRequestError(
                    400,
                    f"Vector dimension {values.shape[0]} does not match the dimension of the "
                    f"index {self.dimension}",
                )
            metadata = item.get("metadata") or {}
            _check_metadata(metadata)
            rows.append((str(item["id"]), values, dict(metadata)))
        with self.lock:
            space = self.namespaces.setdefault(namespace, {})
            for vector_id, values, metadata in rows:
                space[vector_id] = (values, metadata)
        return {"upsertedCount": len(rows)}

    def fetch(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        namespace = (query.get("namespace") or [""])[0]
        with self.lock:
            space = self.namespaces.get(namespace, {})
            found = {
                vector_id: {
                    "id": vector_id,
                    "values": space[vector_id][0].tolist(),
                    "metadata": space[vector_id][1],
                }
                for vector_id in query.get("ids", [])
                if vector_id in space
            }
        return {"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}}

    def delete(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = body.get("namespace") or ""
        if body.get("filter") is not None:
            raise FakeRequestError(
                400, "Serverless and starter indexes do not support deleting with metadata filtering"
            )
        with self.lock:
            space = self.namespaces.setdefault(namespace, {})
            if body.get("deleteAll"):
                space.clear()
            for vector_id in body.get("ids") or []:
                space.pop(vector_id, None)
        return {}

    def query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = body.get("namespace") or ""
        top_k = int(body.get("topK", 10))
        if body.get("vector") is None:
            raise FakeRequestError(400, "This fake only supports query by vector.")
        query = np.asarray(body["vector"], dtype=np.float32)
        if query.shape != (self.dimension,):
            raise FakeRequestError(400, "Query vector dimension does not match the index")
        condition = body.get("filter")
        with self.lock:
            space = self.namespaces.get(namespace, {})
            items = [
                (vector_id, values, metadata)
                for vector_id, (values, metadata) in space.items()
                if condition is None or _matches(condition, metadata)
            ]
        scored = [(self._score(query, values), vid, values, meta) for vid, values, meta in items]
        lower_is_better = self.metric == "euclidean"
        scored.sort(key=lambda item: item[0], reverse=not lower_is_better)
        matches = []
        for score, vector_id, values, metadata in scored[:top_k]:
            match: dict[str, Any] = {"id": vector_id, "score": score}
            if body.get("includeValues"):
                match["values"] = values.tolist()
            if body.get("includeMetadata"):
                match["metadata"] = metadata
            matches.append(match)
        return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 5}}

    def _score(self, query: np.ndarray, values: np.ndarray) -> float:
        if self.metric == "euclidean":
            difference = query.astype(np.float64) - values
            return float(difference @ difference)
        if self.metric == "dotproduct":
            return float(query.astype(np.float64) @ values)
        norms = float(np.linalg.norm(query) * np.linalg.norm(values))
        return float(query.astype(np.float64) @ values) / norms if norms else 0.0

    def stats(self, body: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            namespaces = {
                name: {"vectorCount": len(space)} for name, space in self.namespaces.items() if space
            }
        return {
            "namespaces": namespaces,
            "dimension": self.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
            "metric": self.metric,
            "vectorType": "dense",
        }

    def list_ids(self, query: Mapping[str, list[str]]) -> dict[str, Any]:
        namespace = (query.get("namespace") or [""])[0]
        prefix = (query.get("prefix") or [""])[0]
        limit = int((query.get("limit") or ["100"])[0])
        start = int((query.get("paginationToken") or ["0"])[0])
        with self.lock:
            ids = sorted(i for i in self.namespaces.get(namespace, {}) if i.startswith(prefix))
        page = ids[start : start + limit]
        response: dict[str, Any] = {
            "vectors": [{"id": i} for i in page],
            "namespace": namespace,
            "usage": {"readUnits": 1},
        }
        if start + limit < len(ids):
            response["pagination"] = {"next": str(start + limit)}
        return response


def _check_metadata(metadata: Mapping[str, Any]) -> None:
    for key, value in metadata.items():
        scalar = isinstance(value, str | bool) or (isinstance(value, int | float) and math.isfinite(value))
        strings = isinstance(value, list) and all(isinstance(v, str) for v in value)
        if not (scalar or strings):
            raise FakeRequestError(
                400,
                f"Metadata value must be a string, number, boolean or list of strings, got "
                f"{type(value).__name__} for field {key!r}",
            )


def _matches(condition: Mapping[str, Any], metadata: Mapping[str, Any]) -> bool:
    for key, operand in condition.items():
        if key == "$and":
            if not all(_matches(child, metadata) for child in operand):
                return False
        elif key == "$or":
            if not any(_matches(child, metadata) for child in operand):
                return False
        elif key.startswith("$"):
            raise FakeRequestError(400, f"Unknown top-level filter operator {key}")
        else:
            operators = operand if isinstance(operand, Mapping) else {"$eq": operand}
            for operator, value in operators.items():
                if not _field_matches(metadata, key, operator, value):
                    return False
    return True


def _field_matches(metadata: Mapping[str, Any], field: str, operator: str, value: Any) -> bool:
    if operator == "$exists":
        return (field in metadata) == bool(value)
    if field not in metadata:
        return False
    stored = metadata[field]
    members = stored if isinstance(stored, list) else [stored]
    if operator == "$eq":
        return any(_same(m, value) for m in members)
    if operator == "$ne":
        return not any(_same(m, value) for m in members)
    if operator == "$in":
        return any(_same(m, v) for m in members for v in value)
    if operator == "$nin":
        return not any(_same(m, v) for m in members for v in value)
    comparisons = {
        "$gt": lambda a, b: a > b,
        "$gte": lambda a, b: a >= b,
        "$lt": lambda a, b: a < b,
        "$lte": lambda a, b: a <= b,
    }
    if operator not in comparisons:
        raise FakeRequestError(400, f"Unknown filter operator {operator}")
    if isinstance(stored, bool) or not isinstance(stored, int | float):
        return False
    return bool(comparisons[operator](stored, value))


def _same(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, bool) or isinstance(wanted, bool):
        return isinstance(stored, bool) and isinstance(wanted, bool) and stored == wanted
    return bool(stored == wanted)


def _make_handler(fake: PineconeFake) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; without this, Nagle's algorithm and
        # delayed ACKs add about 40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            fake.requests.append(f"{method} {url.path}")
            routes = {
                ("POST", "/vectors/upsert"): lambda: fake.upsert(json.loads(raw)),
                ("GET", "/vectors/fetch"): lambda: fake.fetch(query),
                ("POST", "/vectors/delete"): lambda: fake.delete(json.loads(raw)),
                ("POST", "/query"): lambda: fake.query(json.loads(raw)),
                ("POST", "/describe_index_stats"): lambda: fake.stats(json.loads(raw or b"{}")),
                ("GET", "/vectors/list"): lambda: fake.list_ids(query),
            }
            try:
                if fake.fail_statuses:
                    status = fake.fail_statuses.pop(0)
                    raise FakeRequestError(status, f"Injected failure {status}")
                route = routes.get((method, url.path))
                if route is None:
                    raise FakeRequestError(404, f"The fake does not serve {method} {url.path}")
                self._send(200, route())
            except FakeRequestError as exc:
                self._send(exc.status, {"code": exc.status, "message": exc.message, "details": []})

        def _send(self, status: int, body: Mapping[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
