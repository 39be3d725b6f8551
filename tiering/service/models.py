"""Request and response bodies of the HTTP API, with their limits.

Pydantic checks the shape and the limits, and a violation returns 422 with the
field's location. The store checks the dimension, NaN and infinite values, ids and
filters, and a violation returns 400 with the store's message.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from tiering.records import MAX_ID_LENGTH, MAX_K, Hit, Record
from tiering.store import TieringResult

MAX_UPSERT_BATCH = 10_000
"""Maximum records in one upsert request."""

MAX_ID_BATCH = 10_000
"""Maximum ids in one get or delete request."""

MAX_QUERY_BATCH = 1_000
"""Maximum query vectors in one search request."""

MAX_DIM = 65_536
"""Maximum vector length accepted; the store checks the collection's own dimension."""

MAX_PLAN_IDS = 1_000
"""Maximum ids listed per direction in a plan response."""

RecordId = Annotated[StrictInt, Field(ge=0, lt=2**63)] | Annotated[
    StrictStr, Field(min_length=1, max_length=MAX_ID_LENGTH)
]
VectorBody = Annotated[list[float], Field(min_length=1, max_length=MAX_DIM)]
ColdMode = Literal["always", "fallback", "never"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpsertRequest(_Request):
    """Insert or overwrite records: one vector and an optional payload per id."""

    ids: list[RecordId] = Field(min_length=1, max_length=MAX_UPSERT_BATCH)
    vectors: list[VectorBody] = Field(min_length=1, max_length=MAX_UPSERT_BATCH)
    payloads: list[dict[str, Any] | None] | None = Field(default=None, max_length=MAX_UPSERT_BATCH)


class SearchRequest(_Request):
    """Search with one ``vector`` or a batch of ``vectors``."""

    vector: VectorBody | None = None
    vectors: list[VectorBody] | None = Field(default=None, min_length=1, max_length=MAX_QUERY_BATCH)
    k: int = Field(default=10, ge=1, le=MAX_K)
    filter: dict[str, Any] | None = None
    cold: ColdMode | None = None
    track: bool = True
    with_payload: bool = True

    @model_validator(mode="after")
    def _one_query_form(self) -> SearchRequest:
        if (self.vector is None) == (self.vectors is None):
            raise ValueError("send exactly one of 'vector' (one query) or 'vectors' (a batch)")
        return self


class IdsRequest(_Request):
    """Ids to fetch or delete."""

    ids: list[RecordId] = Field(min_length=1, max_length=MAX_ID_BATCH)


class GetRequest(IdsRequest):
    with_vector: bool = True


class TierRequest(_Request):
    """Run one tiering pass, or only plan it with ``dry_run``."""

    dry_run: bool = False


def hit_body(hit: Hit, with_payload: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"id": hit.id, "score": hit.score, "tier": hit.tier, "version": hit.version}
    if with_payload:
        body["payload"] = dict(hit.payload)
    return body


def record_body(record: Record, with_vector: bool, tier: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": record.id,
        "version": record.version,
        "payload": dict(record.payload),
        "tier": tier,
    }
    if with_vector:
        body["vector"] = [float(value) for value in record.vector]
    return body


def tiering_body(result: TieringResult) -> dict[str, Any]:
    """Return a pass or a dry-run plan; at most MAX_PLAN_IDS ids are listed per direction."""
    plan = result.plan
    return {
        "dry_run": result.dry_run,
        "demoted": result.demoted,
        "promoted": result.promoted,
        "duration_s": result.duration_s,
        "plan": {
            "demote_count": len(plan.demote),
            "promote_count": len(plan.promote),
            "demote": list(plan.demote[:MAX_PLAN_IDS]),
            "promote": list(plan.promote[:MAX_PLAN_IDS]),
            "ids_truncated": max(len(plan.demote), len(plan.promote)) > MAX_PLAN_IDS,
            "hot_count": plan.hot_count,
            "cold_count": plan.cold_count,
            "hot_limit": plan.hot_limit,
            "hot_count_after": plan.hot_count_after,
            "cold_count_after": plan.cold_count_after,
            "demote_bytes": plan.demote_bytes,
            "promote_bytes": plan.promote_bytes,
            "shortfall": plan.shortfall,
        },
    }
