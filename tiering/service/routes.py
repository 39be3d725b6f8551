"""The data endpoints under ``/v1``: upsert, search, get, delete, count, tier and status.

Handlers are plain functions, so FastAPI runs them in its thread pool; the store is
thread-safe. Each one runs inside :func:`tiering.service.errors.operation`, which
times it, counts it and maps its errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar, cast

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from tiering.config import ColdSearch
from tiering.records import Hit
from tiering.service.errors import operation
from tiering.service.models import (
    GetRequest,
    IdsRequest,
    SearchRequest,
    TierRequest,
    UpsertRequest,
    hit_body,
    record_body,
    tiering_body,
)
from tiering.service.runtime import ServiceRuntime
from tiering.store import TieredStore

router = APIRouter(prefix="/v1")
BodyModel = TypeVar("BodyModel", bound=BaseModel)


def runtime_of(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _json_body(model: type[BodyModel]) -> Callable[[Request], Awaitable[BodyModel]]:
    """Return a dependency that validates the raw body with pydantic's own JSON parser.

    FastAPI would parse the body with ``json.loads`` and then validate the Python
    objects. Parsing and validating in one step is about four times faster for a
    body of 1,000 vectors. Errors become the same 422 response as FastAPI's own check.
    """

    async def parse(request: Request) -> BodyModel:
        try:
            return model.model_validate_json(await request.body() or b"null")
        except PydanticValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc

    return parse


def _body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


UpsertBody = Annotated[UpsertRequest, Depends(_json_body(UpsertRequest))]
SearchBody = Annotated[SearchRequest, Depends(_json_body(SearchRequest))]


@router.post("/upsert", openapi_extra=_body_schema(UpsertRequest))
def upsert(request: Request, body: UpsertBody) -> dict[str, Any]:
    """Insert or overwrite records; returns the version assigned to each id."""
    runtime = runtime_of(request)
    with operation(runtime.metrics, "upsert", body.ids) as op:
        store = runtime.require_store()
        if any(record_id in store.cold for record_id in body.ids):
            op.tier = "hot+cold"
        versions = store.upsert(body.ids, body.vectors, body.payloads)
    return {"upserted": len(versions), "versions": versions}


@router.post("/search", openapi_extra=_body_schema(SearchRequest))
def search(request: Request, body: SearchBody) -> dict[str, Any]:
    """Search both tiers; returns ``hits`` for one vector, ``results`` (one list per query) for a batch."""
    runtime = runtime_of(request)
    with operation(runtime.metrics, "search") as op:
        store = runtime.require_store()
        single = body.vector is not None
        queries = body.vector if body.vector is not None else body.vectors or []
        found = store.search(queries, k=body.k, filter=body.filter, cold=body.cold, track=body.track)
        batches = cast(list[list[Hit]], [found] if single else found)
        op.tier = _search_tiers(store, body, batches)
        op.ids = [hit.id for hits in batches for hit in hits]
    for hits in batches:
        for hit in hits:
            runtime.metrics.results.labels("search", hit.tier).inc()
    lists = [[hit_body(hit, body.with_payload) for hit in hits] for hits in batches]
    if single:
        return {"hits": lists[0]}
    return {"results": lists}


def _search_tiers(store: TieredStore, body: SearchRequest, batches: list[list[Hit]]) -> str:
    mode = store.config.cold_search if body.cold is None else ColdSearch.parse(body.cold)
    if mode is ColdSearch.NEVER or len(store.cold) == 0:
        return "hot"
    if mode is ColdSearch.ALWAYS:
        return "hot+cold"
    # Fallback mode searched the cold tier for a query whose hot hits were too few or too weak.
    threshold = store.config.fallback_min_score
    for hits in batches:
        if len(hits) < body.k or any(hit.tier == "cold" for hit in hits):
            return "hot+cold"
        if threshold is not None and hits[-1].score < threshold:
            return "hot+cold"
    return "hot"


@router.post("/get")
def get(body: GetRequest, request: Request) -> dict[str, Any]:
    """Fetch records by id from whichever tier stores them, and list the missing ids."""
    runtime = runtime_of(request)
    with operation(runtime.metrics, "get", body.ids) as op:
        store = runtime.require_store()
        if any(record_id in store.cold for record_id in body.ids):
            op.tier = "hot+cold"
        records = store.get(body.ids)
        found = []
        for record in records:
            tier = "cold" if store.cold.version_of(record.id) == record.version else "hot"
            runtime.metrics.results.labels("get", tier).inc()
            found.append(record_body(record, body.with_vector, tier))
    returned = {record.id for record in records}
    missing = [record_id for record_id in dict.fromkeys(body.ids) if record_id not in returned]
    return {"records": found, "missing": missing}


@router.post("/delete")
def delete(body: IdsRequest, request: Request) -> dict[str, Any]:
    """Delete ids from both tiers; unknown ids are ignored."""
    runtime = runtime_of(request)
    with operation(runtime.metrics, "delete", body.ids) as op:
        op.tier = "hot+cold"
        runtime.require_store().delete(body.ids)
    return {"deleted": len(set(body.ids))}


@router.get("/count")
def count(request: Request) -> dict[str, Any]:
    """Return the number of vectors in each tier."""
    runtime = runtime_of(request)
    with operation(runtime.metrics, "count") as op:
        op.tier = "hot+cold"
        counts = runtime.require_store().count()
    return {
        "hot": counts.hot, "cold": counts.cold, "total": counts.total, "hot_fraction": counts.hot_fraction
    }


@router.post("/tier")
def tier(request: Request, body: TierRequest | None = None) -> dict[str, Any]:
    """Run one tiering pass now; ``dry_run`` returns the plan without moving anything."""
    runtime = runtime_of(request)
    dry_run = body.dry_run if body is not None else False
    with operation(runtime.metrics, "tier") as op:
        op.tier = "hot+cold"
        result = runtime.require_runner().run_pass(dry_run=dry_run)
        op.ids = [*result.plan.demote, *result.plan.promote]
    return tiering_body(result)


@router.get("/status")
def status(request: Request) -> dict[str, Any]:
    """Return counts, the cold tier, the access tracker, the lease and the last pass."""
    runtime = runtime_of(request)
    with operation(runtime.metrics, "status") as op:
        op.tier = "hot+cold"
        store = runtime.require_store()
        counts = store.count()
        document = _status_document(runtime, store)
        document["counts"] = {"hot": counts.hot, "cold": counts.cold, "hot_fraction": counts.hot_fraction}
    return document


def _status_document(runtime: ServiceRuntime, store: TieredStore) -> dict[str, Any]:
    manifest = store.cold.manifest
    last_pass = runtime.runner.last_pass if runtime.runner is not None else None
    lease = runtime.lease
    return {
        "replica": runtime.settings.replica_name,
        "cold_tier": {
            "manifest_version": manifest.version,
            "segments": len(manifest.segments),
            "segment_bytes": sum(entry.size_bytes for entry in manifest.segments),
            "index_bytes": store.cold.index_bytes(),
        },
        "access_tracker": {
            "ids": len(store.tracker),
            "shared": runtime.shared is not None,
            "pending_ids": runtime.shared.pending_ids() if runtime.shared is not None else 0,
        },
        "lease": None if lease is None else {"key": lease.key, "held": lease.held},
        "last_pass": None if last_pass is None else vars(last_pass),
        "tasks": {task.name: {"runs": task.runs, "failures": task.failures} for task in runtime.tasks},
        "settings": runtime.settings.summary(),
    }
