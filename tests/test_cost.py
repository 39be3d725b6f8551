"""Cost arithmetic against the vendors' published examples and hand-computed values."""

from __future__ import annotations

import pytest

from tiering import cost
from tiering.cost import estimate_tiering_cost
from tiering.errors import ValidationError

GIB = 2**30


def test_pinecone_docs_example_7_14_read_units() -> None:
    # 1M x 1536-d with 1,000 bytes of metadata: (6,144 + 1,000) bytes x 1M = 7.144 GB.
    gb = cost.pinecone_namespace_gb(records=1_000_000, dim=1536, metadata_bytes_per_record=1000)
    assert gb == pytest.approx(7.144)
    assert round(cost.pinecone_query_read_units(gb), 2) == 7.14


def test_pinecone_minimum_read_units() -> None:
    assert cost.pinecone_query_read_units(0.0) == 0.25
    assert cost.pinecone_query_read_units(0.1) == 0.25
    assert cost.pinecone_query_read_units(0.3) == pytest.approx(0.3)


def test_pinecone_fetch_read_units() -> None:
    assert cost.pinecone_fetch_read_units(0) == 0
    assert cost.pinecone_fetch_read_units(1) == 1
    assert cost.pinecone_fetch_read_units(10) == 1
    assert cost.pinecone_fetch_read_units(107) == 11


def test_pinecone_monthly_line_items() -> None:
    items = cost.pinecone_serverless_usd_per_month(
        namespace_gb=2.0, queries_per_month=1_000_000, write_units_per_month=500_000
    )
    assert items["pinecone.storage"] == pytest.approx(0.66)
    assert items["pinecone.read_units"] == pytest.approx(2.0 * 16.0)
    assert items["pinecone.write_units"] == pytest.approx(2.0)


def test_pinecone_zero_queries_pays_storage_only() -> None:
    items = cost.pinecone_serverless_usd_per_month(namespace_gb=1.0, queries_per_month=0)
    assert items["pinecone.read_units"] == 0
    assert items["pinecone.storage"] == pytest.approx(0.33)


def test_zilliz_pricing_example() -> None:
    usd = cost.zilliz_dedicated_usd_per_month(cus=8, replicas=2)
    assert usd == pytest.approx(2856.96)


def test_zilliz_cus_needed_scales_with_data() -> None:
    assert cost.zilliz_cus_needed(vectors=10_000, dim=384) == 1
    # $65 per 1M 768-d vectors / ($0.248 x 720 h) = 0.364 CU per 1M: 10M need 4 CUs.
    assert cost.zilliz_cus_needed(vectors=10_000_000, dim=768) == 4
    assert cost.zilliz_cus_needed(vectors=10_000_000, dim=1536) == 8


def test_weaviate_dimensions() -> None:
    assert cost.weaviate_cloud_usd_per_month(vectors=1_000_000, dim=1000) == pytest.approx(4.65)
    legacy = cost.weaviate_cloud_usd_per_month(
        vectors=1_000_000, dim=1000, plan="serverless-legacy", high_availability=True
    )
    assert legacy == pytest.approx(1000 * 0.095 * 3)


def test_vendor_memory_rules() -> None:
    raw = 1_000_000 * 768 * 4
    assert cost.vendor_memory_bytes(vectors=1_000_000, dim=768, vendor="qdrant") == raw * 1.5
    assert cost.vendor_memory_bytes(vectors=1_000_000, dim=768, vendor="weaviate") == raw * 2


def test_ram_price_per_gib() -> None:
    assert cost.ram_usd_per_month(16 * GIB) == pytest.approx(92.0)


def test_nodes_for_memory_rounds_up() -> None:
    assert cost.nodes_for_memory(0, 16 * GIB) == 1
    assert cost.nodes_for_memory(16 * GIB, 16 * GIB) == 1
    assert cost.nodes_for_memory(16 * GIB + 1, 16 * GIB) == 2
    assert cost.nodes_for_memory(16 * GIB, 16 * GIB, usable=0.5) == 2


def test_s3_standard_storage_and_requests() -> None:
    items = cost.s3_usd_per_month(
        stored_bytes=100 * GIB, get_requests_per_month=1_000_000, put_requests_per_month=2000
    )
    assert items["s3.storage"] == pytest.approx(2.3)
    assert items["s3.get_requests"] == pytest.approx(0.4)
    assert items["s3.put_requests"] == pytest.approx(0.01)
    assert items["s3.retrieval"] == 0


def test_s3_retrieval_fee_per_class() -> None:
    ia = cost.s3_usd_per_month(
        stored_bytes=10 * GIB, storage_class="STANDARD_IA", retrieved_bytes_per_month=5 * GIB
    )
    gir = cost.s3_usd_per_month(
        stored_bytes=10 * GIB, storage_class="GLACIER_IR", retrieved_bytes_per_month=5 * GIB
    )
    assert ia["s3.retrieval"] == pytest.approx(0.05)
    assert gir["s3.retrieval"] == pytest.approx(0.15)
    assert gir["s3.storage"] == pytest.approx(0.04)


def test_s3_minimum_storage_duration() -> None:
    # A Glacier IR object replaced after 30 days is billed for 90: three times the storage.
    kept = cost.s3_usd_per_month(stored_bytes=GIB, storage_class="GLACIER_IR")
    churned = cost.s3_usd_per_month(
        stored_bytes=GIB, storage_class="GLACIER_IR", object_lifetime_days=30
    )
    assert churned["s3.storage"] == pytest.approx(3 * kept["s3.storage"])
    ia = cost.s3_usd_per_month(
        stored_bytes=GIB, storage_class="STANDARD_IA", object_lifetime_days=10
    )
    assert ia["s3.storage"] == pytest.approx(0.0125 * 3)
    standard = cost.s3_usd_per_month(stored_bytes=GIB, object_lifetime_days=1)
    assert standard["s3.storage"] == pytest.approx(0.023)


def test_s3_minimum_object_size() -> None:
    # 1,000 objects of 1 KiB in Standard-IA are billed as 1,000 x 128 KiB.
    items = cost.s3_usd_per_month(
        stored_bytes=1000 * 1024, storage_class="STANDARD_IA", object_count=1000
    )
    assert items["s3.storage"] == pytest.approx(1000 * 128 * 1024 / GIB * 0.0125)


def test_s3_intelligent_tiering_monitoring() -> None:
    big = cost.s3_usd_per_month(
        stored_bytes=1000 * GIB, storage_class="INTELLIGENT_TIERING", object_count=10_000
    )
    small = cost.s3_usd_per_month(
        stored_bytes=10_000 * 1024, storage_class="INTELLIGENT_TIERING", object_count=10_000
    )
    assert big["s3.monitoring"] == pytest.approx(0.025)
    assert small["s3.monitoring"] == 0


def test_s3_unknown_class_named() -> None:
    with pytest.raises(ValidationError, match="Unknown S3 storage class 'DEEP_ARCHIVE'"):
        cost.s3_usd_per_month(stored_bytes=1, storage_class="DEEP_ARCHIVE")


def test_estimate_pinecone_saving() -> None:
    result = estimate_tiering_cost(
        total_vectors=1_000_000,
        hot_vectors=200_000,
        dim=1536,
        queries_per_month=1_000_000,
        cold_index_bytes=800_000 * 1536 * 4,
    )
    before_gb = 1_000_000 * 1536 * 4 / 1e9
    after_gb = 200_000 * 1536 * 4 / 1e9
    assert result.items_before["pinecone.read_units"] == pytest.approx(before_gb * 16)
    assert result.items_after["pinecone.read_units"] == pytest.approx(after_gb * 16)
    cold_bytes = 800_000 * (1536 * 4 + 16)
    assert result.items_after["s3.storage"] == pytest.approx(cold_bytes / GIB * 0.023)
    assert result.items_after["cold_index.ram"] == pytest.approx(800_000 * 1536 * 4 / GIB * 5.75)
    assert result.before_usd_per_month == pytest.approx(sum(result.items_before.values()))
    assert result.after_usd_per_month == pytest.approx(sum(result.items_after.values()))
    assert result.saving_usd_per_month == pytest.approx(
        result.before_usd_per_month - result.after_usd_per_month
    )
    assert result.saving_usd_per_month > 0
    assert result.prices_dated == "2026-12"
    assert result.price_model == "pinecone-serverless"


def test_estimate_all_hot_costs_nothing_extra() -> None:
    result = estimate_tiering_cost(
        total_vectors=10_000, hot_vectors=10_000, dim=384, queries_per_month=0, cold_index_bytes=0
    )
    assert result.saving_usd_per_month == pytest.approx(0)
    assert result.items_after["s3.storage"] == 0


def test_estimate_zero_queries_minimum_read_units() -> None:
    # Namespaces under 0.25 GB pay the 0.25 read-unit minimum per query.
    result = estimate_tiering_cost(
        total_vectors=10_000,
        hot_vectors=1000,
        dim=384,
        queries_per_month=4_000_000,
        cold_index_bytes=0,
    )
    assert result.items_before["pinecone.read_units"] == pytest.approx(4 * 0.25 * 16)
    assert result.items_after["pinecone.read_units"] == pytest.approx(4 * 0.25 * 16)


@pytest.mark.parametrize("model", cost.PRICE_MODELS)
def test_estimate_every_price_model(model: str) -> None:
    result = estimate_tiering_cost(
        total_vectors=50_000_000,
        hot_vectors=5_000_000,
        dim=768,
        queries_per_month=10_000_000,
        cold_index_bytes=45_000_000 * 768 * 4,
        price_model=model,
        cold_storage_class="STANDARD_IA",
        cold_reads_per_month=100_000,
    )
    assert result.before_usd_per_month > result.items_after.get("s3.storage", 0)
    assert result.items_after["s3.get_requests"] == pytest.approx(100.0 * 0.001)
    assert result.items_after["s3.retrieval"] > 0
    assert result.price_model == model


def test_estimate_qdrant_ram_rule() -> None:
    result = estimate_tiering_cost(
        total_vectors=1_000_000,
        hot_vectors=0,
        dim=768,
        queries_per_month=0,
        cold_index_bytes=0,
        price_model="qdrant-ram",
    )
    assert result.items_before["qdrant.ram"] == pytest.approx(1_000_000 * 768 * 6 / GIB * 5.75)


def test_estimate_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="hot vector count 11"):
        estimate_tiering_cost(
            total_vectors=10, hot_vectors=11, dim=4, queries_per_month=0, cold_index_bytes=0
        )
    with pytest.raises(ValidationError, match="Unknown price model 'acme'"):
        estimate_tiering_cost(
            total_vectors=10,
            hot_vectors=1,
            dim=4,
            queries_per_month=0,
            cold_index_bytes=0,
            price_model="acme",
        )
    with pytest.raises(ValidationError, match="queries per month"):
        estimate_tiering_cost(
            total_vectors=10, hot_vectors=1, dim=4, queries_per_month=-1, cold_index_bytes=0
        )
