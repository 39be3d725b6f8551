"""Pure functions from raw records to metrics, node counts, monthly costs and choices.

Measured metrics come from :mod:`tiering.metrics` over the recorded per-query results.
Costs combine the measurements with the price catalog (:mod:`tiering.cost`):

* nodes for memory: shards packed first-fit-decreasing onto nodes of the given RAM,
  of which :data:`NODE_USABLE_SHARE` is available to indexes;
* nodes for throughput: the target QPS over the measured QPS, scaled from this
  machine's cores to the node's vCPUs (memory-optimized VMs have 8 GiB per vCPU);
* nodes = max(memory, throughput) x replicas.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tiering import cost
from tiering.metrics import percentile_ms, recall_at_k
from tiering.prices import Catalog, load_catalog
from tiering.sizing.records import RunRecord

BYTES_PER_GIB = 2**30
NODE_USABLE_SHARE = 0.75
"""Share of a node's RAM that indexes may use; the rest is for the OS and the engine.

NOTE: an assumption, not a vendor figure; change it here to model other headroom.
"""
GIB_PER_VCPU = 8
"""Memory-optimized VMs (AWS r6i) pair 8 GiB of RAM with each vCPU."""

SIZING_PRICE_MODELS = (
    "self-hosted",
    "qdrant-ram",
    "zilliz-dedicated",
    "pinecone-serverless",
    "weaviate-cloud",
)


@dataclass(frozen=True)
class Measured:
    """Metrics of one recorded configuration, before any pricing."""

    dataset: str
    shards: int
    routing: str
    index: str
    hot_fraction: float
    hot_vectors: int
    cold_vectors: int
    dim: int
    k: int
    recall_at_k: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps: float
    concurrency: int
    distance_count_mean: float
    hot_distance_count_mean: float
    shards_searched_mean: float
    cold_hits_mean: float
    shard_sizes: tuple[int, ...]
    shard_index_bytes: tuple[int, ...]
    cold_index_bytes: int
    build_s: float


def measure(record: RunRecord) -> Measured:
    """Compute recall@k, latency percentiles, QPS and work per query from one record."""
    params, queries = record.params, record.queries
    k = int(params["k"])
    latencies_s = [q["latency_s"] for q in queries]
    count = max(1, len(queries))
    wall_s = float(record.throughput.get("wall_s", 0.0))
    done = int(record.throughput.get("queries", 0))
    return Measured(
        dataset=str(params["dataset"]),
        shards=int(params["shards"]),
        routing=str(params["routing"]),
        index=str(params["index"]),
        hot_fraction=float(params["hot_fraction"]),
        hot_vectors=int(params["hot_vectors"]),
        cold_vectors=int(params["cold_vectors"]),
        dim=int(params["dim"]),
        k=k,
        recall_at_k=recall_at_k([q["ids"] for q in queries], [q["truth"] for q in queries], k),
        p50_ms=percentile_ms(latencies_s, 50),
        p95_ms=percentile_ms(latencies_s, 95),
        p99_ms=percentile_ms(latencies_s, 99),
        qps=done / wall_s if wall_s > 0 else float("nan"),
        concurrency=int(record.throughput.get("concurrency", 1)),
        distance_count_mean=sum(q["distance_count"] for q in queries) / count,
        hot_distance_count_mean=sum(
            q.get("hot_distance_count", q["distance_count"]) for q in queries
        )
        / count,
        shards_searched_mean=sum(q["shards_searched"] for q in queries) / count,
        cold_hits_mean=sum(q["cold_hits"] for q in queries) / count,
        shard_sizes=tuple(int(n) for n in record.build["shard_sizes"]),
        shard_index_bytes=tuple(int(b) for b in record.build["shard_index_bytes"]),
        cold_index_bytes=int(record.build["cold_index_bytes"]),
        build_s=float(record.build["build_s"]),
    )


@dataclass(frozen=True)
class CostInputs:
    """Pricing inputs beyond the measurements: query volume, targets, machine, models."""

    queries_per_month: float
    target_qps: float
    machine_cores: int
    price_model: str = "self-hosted"
    cold_storage_class: str = "STANDARD"


@dataclass(frozen=True)
class SizingRow:
    """One priced configuration: measurements, node counts and monthly costs in USD."""

    shards: int
    routing: str
    index: str
    replicas: int
    node_memory_gib: float
    hot_fraction: float
    recall_at_k: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps: float
    distance_count_mean: float
    hot_distance_count_mean: float
    shards_searched_mean: float
    index_bytes_total: int
    index_bytes_max_shard: int
    cold_index_bytes: int
    build_s: float
    nodes_for_memory: int
    nodes_for_throughput: int
    nodes: int
    fits_in_memory: bool
    cold_tier_usd_per_month: float
    cost_usd_per_month: float
    price_model: str
    cost_by_model: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        """Return the row as a JSON-ready dict."""
        return asdict(self)


def pack_shards(shard_bytes: Sequence[int], node_bytes: float) -> int:
    """Return the nodes first-fit-decreasing packing needs for these shards (>= 1).

    A shard larger than a node still takes one node of its own; callers check
    :func:`fits` to flag such configurations.
    """
    free: list[float] = []
    for size in sorted(shard_bytes, reverse=True):
        for slot, space in enumerate(free):
            if size <= space:
                free[slot] -= size
                break
        else:
            free.append(node_bytes - size)
    return max(1, len(free))


def fits(shard_bytes: Sequence[int], node_bytes: float) -> bool:
    """Return whether every shard fits in one node's usable memory."""
    return max(shard_bytes, default=0) <= node_bytes


def nodes_for_throughput(
    target_qps: float, measured_qps: float, node_memory_gib: float, machine_cores: int
) -> int:
    """Return the nodes needed to serve ``target_qps`` (1 when no target is set).

    A node's capacity is the measured QPS scaled by its vCPUs over this machine's cores.
    """
    if target_qps <= 0:
        return 1
    node_vcpus = max(1.0, node_memory_gib / GIB_PER_VCPU)
    node_qps = measured_qps * node_vcpus / max(1, machine_cores)
    if not node_qps > 0:
        return 1
    return max(1, math.ceil(target_qps / node_qps))


def price_row(
    measured: Measured,
    *,
    replicas: int,
    node_memory_gib: float,
    inputs: CostInputs,
    catalog: Catalog | None = None,
) -> SizingRow:
    """Price one measured configuration with ``replicas`` on nodes of ``node_memory_gib``."""
    usable_bytes = node_memory_gib * BYTES_PER_GIB * NODE_USABLE_SHARE
    shard_bytes = measured.shard_index_bytes
    memory_nodes = pack_shards(shard_bytes, usable_bytes)
    throughput_nodes = nodes_for_throughput(
        inputs.target_qps, measured.qps, node_memory_gib, inputs.machine_cores
    )
    nodes = max(memory_nodes, throughput_nodes) * replicas
    node_usd = cost.ram_usd_per_month(node_memory_gib * BYTES_PER_GIB, catalog)

    cold_usd = cold_tier_usd_per_month(measured, inputs, catalog)
    by_model = {
        model: backend + cold_usd
        for model, backend in hot_tier_usd_per_month(
            measured,
            replicas=replicas,
            nodes=nodes,
            node_usd=node_usd,
            node_bytes=usable_bytes,
            inputs=inputs,
            catalog=catalog,
        ).items()
    }
    return SizingRow(
        shards=measured.shards,
        routing=measured.routing,
        index=measured.index,
        replicas=replicas,
        node_memory_gib=node_memory_gib,
        hot_fraction=measured.hot_fraction,
        recall_at_k=measured.recall_at_k,
        p50_ms=measured.p50_ms,
        p95_ms=measured.p95_ms,
        p99_ms=measured.p99_ms,
        qps=measured.qps,
        distance_count_mean=measured.distance_count_mean,
        hot_distance_count_mean=measured.hot_distance_count_mean,
        shards_searched_mean=measured.shards_searched_mean,
        index_bytes_total=sum(shard_bytes),
        index_bytes_max_shard=max(shard_bytes, default=0),
        cold_index_bytes=measured.cold_index_bytes,
        build_s=measured.build_s,
        nodes_for_memory=memory_nodes,
        nodes_for_throughput=throughput_nodes,
        nodes=nodes,
        fits_in_memory=fits(shard_bytes, usable_bytes),
        cold_tier_usd_per_month=cold_usd,
        cost_usd_per_month=by_model[inputs.price_model],
        price_model=inputs.price_model,
        cost_by_model=by_model,
    )


def hot_tier_usd_per_month(
    measured: Measured,
    *,
    replicas: int,
    nodes: int,
    node_usd: float,
    node_bytes: float,
    inputs: CostInputs,
    catalog: Catalog | None,
) -> dict[str, float]:
    """Return the hot tier's monthly cost under every sizing price model.

    * ``self-hosted``: ``nodes`` VMs priced by their RAM.
    * ``qdrant-ram``: like self-hosted, but each shard's memory follows Qdrant's rule
      (vectors x dim x 4 bytes x 1.5) instead of the measured FAISS bytes.
    * ``zilliz-dedicated``: CUs for the hot vectors x replicas.
    * ``pinecone-serverless``: one namespace per shard; each query pays the read units
      of every shard it visits (at least 0.25 each); replicas do not apply.
    * ``weaviate-cloud``: stored dimensions x replicas (each replica stores a copy).
    """
    shards = max(1, measured.shards)
    qdrant_bytes = [
        cost.vendor_memory_bytes(vectors=v, dim=measured.dim, vendor="qdrant", catalog=catalog)
        for v in measured.shard_sizes
    ]
    qdrant_memory_nodes = pack_shards(qdrant_bytes, node_bytes)
    qdrant_nodes = max(qdrant_memory_nodes, nodes // replicas) * replicas

    cus = cost.zilliz_cus_needed(vectors=measured.hot_vectors, dim=measured.dim, catalog=catalog)
    namespace_gb = cost.pinecone_namespace_gb(records=measured.hot_vectors, dim=measured.dim)
    read_units_per_query = measured.shards_searched_mean * cost.pinecone_query_read_units(
        namespace_gb / shards, catalog
    )
    pinecone = cost.pinecone_serverless_usd_per_month(
        namespace_gb=namespace_gb, queries_per_month=0, catalog=catalog
    )
    read_unit_usd = (catalog or load_catalog()).price("pinecone.serverless.read_units") / 1e6
    read_units_usd = inputs.queries_per_month * read_units_per_query * read_unit_usd
    return {
        "self-hosted": nodes * node_usd,
        "qdrant-ram": qdrant_nodes * node_usd,
        "zilliz-dedicated": cost.zilliz_dedicated_usd_per_month(
            cus=cus, replicas=replicas, catalog=catalog
        ),
        "pinecone-serverless": pinecone["pinecone.storage"] + read_units_usd,
        "weaviate-cloud": replicas
        * cost.weaviate_cloud_usd_per_month(
            vectors=measured.hot_vectors, dim=measured.dim, catalog=catalog
        ),
    }


def cold_tier_usd_per_month(
    measured: Measured, inputs: CostInputs, catalog: Catalog | None
) -> float:
    """Return the cold tier's monthly cost: S3 for the cold rows plus RAM for its index.

    Every cold hit returned is counted as one GET of one row, an upper bound when
    hits share a Parquet row group.
    """
    if measured.cold_vectors == 0:
        return 0.0
    row_bytes = cost.cold_parquet_bytes(1, measured.dim)
    cold_reads = inputs.queries_per_month * measured.cold_hits_mean
    s3 = cost.s3_usd_per_month(
        stored_bytes=cost.cold_parquet_bytes(measured.cold_vectors, measured.dim),
        storage_class=inputs.cold_storage_class,
        get_requests_per_month=cold_reads,
        retrieved_bytes_per_month=cold_reads * row_bytes,
        catalog=catalog,
    )
    return sum(s3.values()) + cost.ram_usd_per_month(measured.cold_index_bytes, catalog)


def pareto_front(rows: Sequence[SizingRow]) -> list[int]:
    """Return the positions of rows no other row beats on both cost and recall.

    A row is dominated when another costs no more and recalls at least as much, and
    is strictly better on one of the two.
    """
    front = []
    for i, row in enumerate(rows):
        dominated = any(
            other.cost_usd_per_month <= row.cost_usd_per_month
            and other.recall_at_k >= row.recall_at_k
            and (
                other.cost_usd_per_month < row.cost_usd_per_month
                or other.recall_at_k > row.recall_at_k
            )
            for other in rows
        )
        if not dominated:
            front.append(i)
    return front


def cheapest_meeting(
    rows: Sequence[SizingRow], *, target_recall: float, target_p99_ms: float | None
) -> SizingRow | None:
    """Return the cheapest row that fits in memory and meets both targets, or None."""
    eligible = [
        row
        for row in rows
        if row.fits_in_memory
        and row.recall_at_k >= target_recall
        and (target_p99_ms is None or row.p99_ms <= target_p99_ms)
    ]
    return min(eligible, key=lambda r: (r.cost_usd_per_month, -r.recall_at_k), default=None)
