"""Monthly cost of keeping vectors in a vector store and of the cold tier, from the catalog.

Pure functions: every price comes from a :class:`~tiering.prices.Catalog` (the shipped
one when ``catalog`` is ``None``) and every unit is in the name. Byte units follow the
vendors' bills: Pinecone and Weaviate count GB of 10^9 bytes, AWS counts GB of 2^30
bytes (GiB), VM RAM is sold in GiB. A month is 720 hours for Zilliz (its pricing
example) and 730 hours for AWS (its calculator).

The figures are list prices on the catalog's date: an estimate, not a quote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from tiering.errors import ValidationError
from tiering.prices import Catalog, load_catalog

BYTES_PER_GB = 10**9
BYTES_PER_GIB = 2**30
FLOAT32_BYTES = 4

PARQUET_ROW_OVERHEAD_BYTES = 16
"""Bytes per cold row besides the vector: an int64 id and an int64 version.

An estimate: Parquet encoding, payloads and compression change the real size (random
float32 vectors shrink by about 10% with zstd).
"""

PriceModel = Literal["pinecone-serverless", "zilliz-dedicated", "weaviate-cloud", "qdrant-ram"]
PRICE_MODELS: tuple[str, ...] = (
    "pinecone-serverless",
    "zilliz-dedicated",
    "weaviate-cloud",
    "qdrant-ram",
)

StorageClass = Literal["STANDARD", "STANDARD_IA", "GLACIER_IR", "INTELLIGENT_TIERING"]
_STORAGE_CLASS_KEYS = {
    "STANDARD": "s3.standard",
    "STANDARD_IA": "s3.standard_ia",
    "GLACIER_IR": "s3.glacier_ir",
    "INTELLIGENT_TIERING": "s3.intelligent_tiering",
}
STORAGE_CLASSES: tuple[str, ...] = tuple(_STORAGE_CLASS_KEYS)


def _catalog(catalog: Catalog | None) -> Catalog:
    return load_catalog() if catalog is None else catalog


def _check_count(name: str, value: float) -> None:
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValidationError(f"Invalid {name} {value!r}: it must be a finite number >= 0.")


def raw_vector_bytes(vectors: int, dim: int) -> int:
    """Return the bytes of ``vectors`` float32 vectors of dimension ``dim``."""
    _check_count("vector count", vectors)
    if dim < 1:
        raise ValidationError(f"Invalid dimension {dim!r}: it must be at least 1.")
    return int(vectors) * int(dim) * FLOAT32_BYTES


# --- Pinecone serverless ---------------------------------------------------------------


def pinecone_namespace_gb(
    *, records: int, dim: int, metadata_bytes_per_record: int = 0, id_bytes_per_record: int = 0
) -> float:
    """Return a namespace's size in GB (10^9 bytes) as Pinecone bills it.

    A record counts 4 bytes per dimension plus its metadata and id bytes. Pinecone's
    docs size 1M records of 1536 dimensions at 7.14 GB. The float32 values are
    6.144 GB, so the example implies about 1,000 bytes of metadata and id per record.
    """
    _check_count("metadata bytes per record", metadata_bytes_per_record)
    _check_count("id bytes per record", id_bytes_per_record)
    vector_bytes = raw_vector_bytes(records, dim)
    other_bytes = records * (metadata_bytes_per_record + id_bytes_per_record)
    return (vector_bytes + other_bytes) / BYTES_PER_GB


def pinecone_query_read_units(namespace_gb: float, catalog: Catalog | None = None) -> float:
    """Return the read units one query costs: 1 per GB of namespace, at least 0.25."""
    prices = _catalog(catalog)
    _check_count("namespace size in GB", namespace_gb)
    per_gb = prices.rule("pinecone.query.read_units_per_gb")
    return max(prices.rule("pinecone.query.min_read_units"), namespace_gb * per_gb)


def pinecone_fetch_read_units(records_fetched: int, catalog: Catalog | None = None) -> float:
    """Return the read units of one fetch: 1 per 10 records, rounded up, 0 for no records."""
    prices = _catalog(catalog)
    _check_count("fetched record count", records_fetched)
    if records_fetched == 0:
        return 0.0
    per_unit = prices.rule("pinecone.fetch.records_per_read_unit")
    return float(max(1, math.ceil(records_fetched / per_unit)))


def pinecone_serverless_usd_per_month(
    *,
    namespace_gb: float,
    queries_per_month: float,
    write_units_per_month: float = 0.0,
    fetch_read_units_per_month: float = 0.0,
    catalog: Catalog | None = None,
) -> dict[str, float]:
    """Return Pinecone serverless line items (storage, read units, write units) in USD/month.

    Every query costs :func:`pinecone_query_read_units` of the namespace, so read cost
    grows with the namespace as well as with the query count.
    """
    prices = _catalog(catalog)
    _check_count("queries per month", queries_per_month)
    _check_count("write units per month", write_units_per_month)
    _check_count("fetch read units per month", fetch_read_units_per_month)

    query_units = queries_per_month * pinecone_query_read_units(namespace_gb, prices)
    read_units = query_units + fetch_read_units_per_month
    return {
        "pinecone.storage": namespace_gb * prices.price("pinecone.serverless.storage"),
        "pinecone.read_units": read_units / 1e6 * prices.price("pinecone.serverless.read_units"),
        "pinecone.write_units": write_units_per_month
        / 1e6
        * prices.price("pinecone.serverless.write_units"),
    }


# --- Zilliz Cloud dedicated -------------------------------------------------------------


def zilliz_dedicated_usd_per_month(
    *, cus: float, replicas: int = 1, hours: float | None = None, catalog: Catalog | None = None
) -> float:
    """Return the cost of a dedicated cluster: CUs x replicas x hours x the CU-hour price.

    ``hours`` defaults to the 720-hour month of Zilliz's pricing example
    (8 CU x 2 replicas x 720 h x $0.248 = $2,856.96).
    """
    prices = _catalog(catalog)
    _check_count("CU count", cus)
    if replicas < 1:
        raise ValidationError(f"Invalid replica count {replicas!r}: it must be at least 1.")
    month_hours = prices.rule("zilliz.hours_per_month") if hours is None else hours
    _check_count("hours", month_hours)
    return cus * replicas * month_hours * prices.price("zilliz.dedicated.performance.cu_hour")


def zilliz_cus_needed(*, vectors: int, dim: int, catalog: Catalog | None = None) -> int:
    """Return the performance-optimized CUs needed to serve ``vectors`` (at least 1).

    Derived from Zilliz's "from $65 per 1M 768-d vectors per month": one CU fits
    $0.248 x 720 h / $65 x 1M 768-d vectors (about 2.7M), scaled by dimension.
    NOTE: an estimate, because Zilliz's own sizing tool also weighs index type and load.
    """
    prices = _catalog(catalog)
    raw_vector_bytes(vectors, dim)
    if vectors == 0:
        return 1
    cu_month_usd = prices.price("zilliz.dedicated.performance.cu_hour") * prices.rule(
        "zilliz.hours_per_month"
    )
    per_million_768d = prices.price("zilliz.dedicated.performance.per_million_768d")
    million_768d = vectors / 1e6 * dim / 768
    return max(1, math.ceil(million_768d * per_million_768d / cu_month_usd))


# --- Weaviate Cloud ---------------------------------------------------------------------


def weaviate_cloud_usd_per_month(
    *,
    vectors: int,
    dim: int,
    plan: Literal["flex", "serverless-legacy"] = "flex",
    high_availability: bool = False,
    catalog: Catalog | None = None,
) -> float:
    """Return Weaviate Cloud's charge for stored vector dimensions, in USD/month.

    ``serverless-legacy`` with ``high_availability`` applies the older list's x3.
    NOTE: Flex plan minimums and compression discounts are not modelled.
    """
    prices = _catalog(catalog)
    raw_vector_bytes(vectors, dim)
    million_dimensions = vectors * dim / 1e6
    if plan == "flex":
        return million_dimensions * prices.price("weaviate.cloud.flex.dimensions")
    if plan != "serverless-legacy":
        raise ValidationError(
            f"Unknown Weaviate plan {plan!r}. Use 'flex' or 'serverless-legacy'."
        )
    factor = prices.rule("weaviate.serverless_legacy.ha_factor") if high_availability else 1.0
    return million_dimensions * prices.price("weaviate.cloud.serverless_legacy.dimensions") * factor


# --- RAM: self-hosted nodes and in-process indexes --------------------------------------


def vendor_memory_bytes(
    *, vectors: int, dim: int, vendor: Literal["qdrant", "weaviate"], catalog: Catalog | None = None
) -> int:
    """Return the RAM a vendor's sizing rule requires: raw float32 bytes x its factor.

    Qdrant: x1.5; Weaviate: about x2 (both from the catalog's rules).
    """
    prices = _catalog(catalog)
    if vendor not in ("qdrant", "weaviate"):
        raise ValidationError(
            f"Unknown vendor {vendor!r} for a memory rule. Use qdrant or weaviate."
        )
    factor = prices.rule(f"{vendor}.memory_factor")
    return math.ceil(raw_vector_bytes(vectors, dim) * factor)


def ram_usd_per_month(ram_bytes: float, catalog: Catalog | None = None) -> float:
    """Return the cost of ``ram_bytes`` of memory-optimized VM RAM, in USD/month."""
    prices = _catalog(catalog)
    _check_count("RAM bytes", ram_bytes)
    return ram_bytes / BYTES_PER_GIB * prices.price("vm.ram.memory_optimized")


def nodes_for_memory(
    required_bytes: float, node_memory_bytes: float, *, usable: float = 1.0
) -> int:
    """Return the nodes needed so that ``required_bytes`` fit in ``usable`` x node RAM (>= 1)."""
    _check_count("required bytes", required_bytes)
    if node_memory_bytes <= 0 or not 0 < usable <= 1:
        raise ValidationError(
            f"Invalid node memory {node_memory_bytes!r} bytes or usable share {usable!r}: "
            "node memory must be positive and the usable share in (0, 1]."
        )
    return max(1, math.ceil(required_bytes / (node_memory_bytes * usable)))


# --- S3 cold tier -----------------------------------------------------------------------


def s3_usd_per_month(
    *,
    stored_bytes: float,
    storage_class: str = "STANDARD",
    get_requests_per_month: float = 0.0,
    put_requests_per_month: float = 0.0,
    retrieved_bytes_per_month: float = 0.0,
    object_count: int = 1,
    object_lifetime_days: float | None = None,
    catalog: Catalog | None = None,
) -> dict[str, float]:
    """Return S3 line items (storage, GET, PUT, retrieval, monitoring) in USD/month.

    Args:
        stored_bytes: bytes kept in the bucket, spread evenly over ``object_count`` objects.
        storage_class: ``STANDARD``, ``STANDARD_IA``, ``GLACIER_IR`` or ``INTELLIGENT_TIERING``.
        object_lifetime_days: how long an object lives before it is deleted or replaced;
            ``None`` means longer than any minimum. Standard-IA (30 days) and Glacier
            Instant Retrieval (90 days) charge the minimum duration for shorter lives,
            so storage cost is multiplied by minimum / lifetime.

    Objects below 128 KiB are billed as 128 KiB in Standard-IA and Glacier IR.
    Intelligent-Tiering is charged at its Frequent tier price (an upper bound) plus the
    monitoring fee for objects of 128 KiB or more.

    Raises:
        ValidationError: unknown storage class or a negative quantity.
    """
    prices = _catalog(catalog)
    prefix = _STORAGE_CLASS_KEYS.get(str(storage_class).upper())
    if prefix is None:
        raise ValidationError(
            f"Unknown S3 storage class {storage_class!r}. Use one of: {', '.join(STORAGE_CLASSES)}."
        )
    for name, value in (
        ("stored bytes", stored_bytes),
        ("GET requests per month", get_requests_per_month),
        ("PUT requests per month", put_requests_per_month),
        ("retrieved bytes per month", retrieved_bytes_per_month),
    ):
        _check_count(name, value)
    if object_count < 1 and stored_bytes > 0:
        raise ValidationError(f"Invalid object count {object_count!r} for {stored_bytes} bytes.")
    if object_lifetime_days is not None and object_lifetime_days <= 0:
        raise ValidationError(
            f"Invalid object lifetime {object_lifetime_days!r} days: it must be positive."
        )

    object_bytes = stored_bytes / object_count if stored_bytes else 0.0
    billed_object_bytes = max(object_bytes, prices.rule(f"{prefix}.min_object_bytes"))
    billed_bytes = billed_object_bytes * object_count if stored_bytes else 0.0
    min_days = prices.rule(f"{prefix}.min_storage_days")
    duration_factor = 1.0
    if object_lifetime_days is not None and object_lifetime_days < min_days:
        duration_factor = min_days / object_lifetime_days

    items = {
        "s3.storage": billed_bytes
        / BYTES_PER_GIB
        * prices.price(f"{prefix}.storage")
        * duration_factor,
        "s3.get_requests": get_requests_per_month / 1000 * prices.price(f"{prefix}.get"),
        "s3.put_requests": put_requests_per_month / 1000 * prices.price(f"{prefix}.put"),
        "s3.retrieval": retrieved_bytes_per_month
        / BYTES_PER_GIB
        * prices.price(f"{prefix}.retrieval"),
    }
    if prefix == "s3.intelligent_tiering":
        monitored_min_bytes = prices.rule(f"{prefix}.min_monitored_object_bytes")
        monitored = object_count if object_bytes >= monitored_min_bytes else 0
        items["s3.monitoring"] = monitored / 1000 * prices.price(f"{prefix}.monitoring")
    return items


# --- Hot tier under one price model and the tiering estimate ----------------------------


def backend_usd_per_month(
    price_model: str,
    *,
    vectors: int,
    dim: int,
    queries_per_month: float,
    catalog: Catalog | None = None,
) -> dict[str, float]:
    """Return line items for keeping ``vectors`` hot in one backend, in USD/month.

    Price models:

    * ``pinecone-serverless``: storage + read units per query scaling with the
      namespace (vector bytes only, no metadata) + no writes.
    * ``zilliz-dedicated``: whole performance CUs from :func:`zilliz_cus_needed`, 1 replica.
    * ``weaviate-cloud``: Flex price per stored dimension.
    * ``qdrant-ram``: self-hosted VM RAM by Qdrant's x1.5 rule, charged per GiB
      (a share of a node, not whole nodes).

    Raises:
        ValidationError: unknown price model or invalid quantity.
    """
    prices = _catalog(catalog)
    raw_vector_bytes(vectors, dim)
    _check_count("queries per month", queries_per_month)
    if price_model == "pinecone-serverless":
        namespace_gb = pinecone_namespace_gb(records=vectors, dim=dim)
        return pinecone_serverless_usd_per_month(
            namespace_gb=namespace_gb, queries_per_month=queries_per_month, catalog=prices
        )
    if price_model == "zilliz-dedicated":
        cus = zilliz_cus_needed(vectors=vectors, dim=dim, catalog=prices)
        return {"zilliz.compute_units": zilliz_dedicated_usd_per_month(cus=cus, catalog=prices)}
    if price_model == "weaviate-cloud":
        usd = weaviate_cloud_usd_per_month(vectors=vectors, dim=dim, catalog=prices)
        return {"weaviate.dimensions": usd}
    if price_model == "qdrant-ram":
        ram_bytes = vendor_memory_bytes(vectors=vectors, dim=dim, vendor="qdrant", catalog=prices)
        return {"qdrant.ram": ram_usd_per_month(ram_bytes, prices)}
    raise ValidationError(
        f"Unknown price model {price_model!r}. Use one of: {', '.join(PRICE_MODELS)}."
    )


@dataclass(frozen=True)
class TieringCost:
    """Monthly cost before tiering (all vectors hot) and after (hot + cold tier), in USD."""

    before_usd_per_month: float
    after_usd_per_month: float
    saving_usd_per_month: float
    items_before: dict[str, float] = field(default_factory=dict)
    items_after: dict[str, float] = field(default_factory=dict)
    price_model: str = "pinecone-serverless"
    prices_dated: str = ""


def cold_parquet_bytes(vectors: int, dim: int) -> int:
    """Return the estimated Parquet bytes of ``vectors`` cold rows (float32, uncompressed)."""
    return raw_vector_bytes(vectors, dim) + int(vectors) * PARQUET_ROW_OVERHEAD_BYTES


def estimate_tiering_cost(
    *,
    total_vectors: int,
    hot_vectors: int,
    dim: int,
    queries_per_month: float,
    cold_index_bytes: int,
    price_model: str = "pinecone-serverless",
    cold_storage_class: str = "STANDARD",
    cold_reads_per_month: float = 0.0,
    catalog: Catalog | None = None,
) -> TieringCost:
    """Estimate what moving all but ``hot_vectors`` to the cold tier saves per month.

    "Before" keeps all ``total_vectors`` hot in the ``price_model`` backend. "After"
    keeps ``hot_vectors`` there, and every query still reaches the hot tier. "After"
    also adds the cold tier: S3 storage of the cold vectors as Parquet float32 rows,
    one GET and the retrieval fee of one row per cold read, and RAM for the cold
    FAISS index of ``cold_index_bytes`` at the memory-optimized VM price.

    NOTE: PUT requests of demotions are left out; they are a one-off cost per segment.

    Raises:
        ValidationError: ``hot_vectors`` exceeds ``total_vectors``, a quantity is
            negative, or the price model or storage class is unknown.
    """
    prices = _catalog(catalog)
    for name, value in (
        ("total vector count", total_vectors),
        ("hot vector count", hot_vectors),
        ("cold index bytes", cold_index_bytes),
        ("cold reads per month", cold_reads_per_month),
    ):
        _check_count(name, value)
    if hot_vectors > total_vectors:
        raise ValidationError(
            f"Invalid hot vector count {hot_vectors}: it exceeds the total of {total_vectors}."
        )

    items_before = backend_usd_per_month(
        price_model,
        vectors=total_vectors,
        dim=dim,
        queries_per_month=queries_per_month,
        catalog=prices,
    )

    cold_vectors = total_vectors - hot_vectors
    row_bytes = cold_parquet_bytes(1, dim)
    items_after = backend_usd_per_month(
        price_model,
        vectors=hot_vectors,
        dim=dim,
        queries_per_month=queries_per_month,
        catalog=prices,
    )
    items_after.update(
        s3_usd_per_month(
            stored_bytes=cold_parquet_bytes(cold_vectors, dim),
            storage_class=cold_storage_class,
            get_requests_per_month=cold_reads_per_month,
            retrieved_bytes_per_month=cold_reads_per_month * row_bytes,
            catalog=prices,
        )
    )
    items_after["cold_index.ram"] = ram_usd_per_month(cold_index_bytes, prices)

    before = sum(items_before.values())
    after = sum(items_after.values())
    return TieringCost(
        before_usd_per_month=before,
        after_usd_per_month=after,
        saving_usd_per_month=before - after,
        items_before=items_before,
        items_after=items_after,
        price_model=price_model,
        prices_dated=prices.date_read,
    )
