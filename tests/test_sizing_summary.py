"""Metrics, node counts, costs and choices computed from sizing records."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tiering import cost
from tiering.metrics import percentile_ms, recall_at_k
from tiering.sizing.records import RunRecord, read_records, write_records
from tiering.sizing.summary import (
    CostInputs,
    cheapest_meeting,
    measure,
    nodes_for_throughput,
    pack_shards,
    pareto_front,
    price_row,
)

GIB = 2**30


def test_recall_hand_computed() -> None:
    found = [[1, 2, 3], [4, 5, 9], [7]]
    truth = [[1, 2, 3], [4, 6, 7], [7, 8, 9]]
    # 3/3 + 1/3 + 1/3 over 3 queries.
    assert recall_at_k(found, truth, 3) == pytest.approx(5 / 9)
    assert recall_at_k(found, truth, 1) == pytest.approx(1.0)


def test_percentiles_hand_computed() -> None:
    latencies_s = [0.001, 0.002, 0.003, 0.004, 0.010]
    assert percentile_ms(latencies_s, 50) == pytest.approx(3.0)
    # Linear interpolation: position 0.99 * 4 = 3.96 between 4 ms and 10 ms.
    assert percentile_ms(latencies_s, 99) == pytest.approx(4.0 + 0.96 * 6.0)
    assert math.isnan(percentile_ms([], 50))


def _record(
    ids: list[list[int]], truth: list[list[int]], latencies_s: list[float], **params: Any
) -> RunRecord:
    base_params = {
        "dataset": "hand", "shards": 2, "routing": "all", "index": "flat", "hot_fraction": 0.5,
        "hot_vectors": 1000, "cold_vectors": 1000, "dim": 8, "k": 2,
    }
    base_params.update(params)
    queries = [
        {"ids": i, "truth": t, "latency_s": s, "distance_count": 100, "shards_searched": 2,
         "cold_hits": 1}
        for i, t, s in zip(ids, truth, latencies_s, strict=True)
    ]
    build = {"shard_sizes": [500, 500], "shard_index_bytes": [16_000, 16_000],
             "cold_index_bytes": 32_000, "build_s": 0.5}
    return RunRecord(base_params, build, queries, {"concurrency": 2, "queries": 4, "wall_s": 0.5})


def test_measure_from_record() -> None:
    record = _record([[1, 2], [3, 9]], [[1, 2], [3, 4]], [0.001, 0.003])
    measured = measure(record)
    assert measured.recall_at_k == pytest.approx(0.75)
    assert measured.p50_ms == pytest.approx(2.0)
    assert measured.qps == pytest.approx(8.0)
    assert measured.cold_hits_mean == 1
    assert measured.shard_index_bytes == (16_000, 16_000)


def test_records_round_trip(tmp_path: Any) -> None:
    record = _record([[1, 2]], [[1, 2]], [0.001])
    for name in ("records.jsonl", "records.jsonl.gz"):
        path = tmp_path / name
        write_records([record, record], path)
        loaded = list(read_records(path))
        assert len(loaded) == 2
        assert loaded[0].params == record.params
        assert loaded[1].queries == record.queries


def test_pack_shards_first_fit() -> None:
    assert pack_shards([], 10) == 1
    assert pack_shards([6, 5, 4, 3, 2], 10) == 2
    assert pack_shards([6, 6, 6], 10) == 3
    assert pack_shards([12], 10) == 1


def test_nodes_for_throughput() -> None:
    assert nodes_for_throughput(0, 1000, 16, 2) == 1
    # A 16 GiB node has 2 vCPUs, like the 2-core machine: 2,500 QPS needs 3 nodes.
    assert nodes_for_throughput(2500, 1000, 16, 2) == 3
    # A 64 GiB node has 8 vCPUs: 4x the measured QPS.
    assert nodes_for_throughput(8000, 1000, 64, 2) == 2


def test_price_row_replicas_multiply_nodes() -> None:
    measured = measure(_record([[1, 2]], [[1, 2]], [0.001]))
    inputs = CostInputs(queries_per_month=1_000_000, target_qps=0, machine_cores=2)
    one = price_row(measured, replicas=1, node_memory_gib=16, inputs=inputs)
    three = price_row(measured, replicas=3, node_memory_gib=16, inputs=inputs)
    assert one.nodes == 1
    assert three.nodes == 3
    node_usd = 16 * 5.75
    assert one.cost_by_model["self-hosted"] == pytest.approx(node_usd + one.cold_tier_usd_per_month)
    assert three.cost_by_model["self-hosted"] == pytest.approx(
        3 * node_usd + three.cold_tier_usd_per_month
    )
    assert three.cost_by_model["zilliz-dedicated"] - three.cold_tier_usd_per_month == (
        pytest.approx(3 * 0.248 * 720)
    )
    assert three.cost_by_model["pinecone-serverless"] == pytest.approx(
        one.cost_by_model["pinecone-serverless"]
    )


def test_price_row_cold_tier_items() -> None:
    measured = measure(_record([[1, 2]], [[1, 2]], [0.001]))
    inputs = CostInputs(queries_per_month=1_000_000, target_qps=0, machine_cores=2)
    row = price_row(measured, replicas=1, node_memory_gib=16, inputs=inputs)
    stored = cost.cold_parquet_bytes(1000, 8) / GIB * 0.023
    gets = 1_000_000 * 1 / 1000 * 0.0004
    ram = 32_000 / GIB * 5.75
    assert row.cold_tier_usd_per_month == pytest.approx(stored + gets + ram)


def test_pinecone_fan_out_pays_minimum_per_shard() -> None:
    fan_out = measure(_record([[1, 2]], [[1, 2]], [0.001]))
    inputs = CostInputs(queries_per_month=1_000_000, target_qps=0, machine_cores=2)
    row = price_row(fan_out, replicas=1, node_memory_gib=16, inputs=inputs)
    storage = 1000 * 8 * 4 / 1e9 * 0.33
    # Two tiny namespaces per query, each at the 0.25 read-unit minimum.
    read_units = 1_000_000 * 2 * 0.25 / 1e6 * 16
    pinecone = row.cost_by_model["pinecone-serverless"] - row.cold_tier_usd_per_month
    assert pinecone == pytest.approx(storage + read_units)


def test_memory_too_small_flags_row() -> None:
    record = _record([[1, 2]], [[1, 2]], [0.001])
    record.build["shard_index_bytes"] = [20 * GIB, 1 * GIB]
    inputs = CostInputs(queries_per_month=0, target_qps=0, machine_cores=2)
    row = price_row(measure(record), replicas=1, node_memory_gib=16, inputs=inputs)
    assert not row.fits_in_memory
    assert row.nodes_for_memory == 2


def test_pareto_and_cheapest() -> None:
    inputs = CostInputs(queries_per_month=1_000_000, target_qps=0, machine_cores=2)
    good = measure(_record([[1, 2]], [[1, 2]], [0.001]))
    poor = measure(_record([[1, 9]], [[1, 2]], [0.0005]))
    rows = [
        price_row(good, replicas=1, node_memory_gib=16, inputs=inputs),
        price_row(good, replicas=2, node_memory_gib=16, inputs=inputs),
        price_row(poor, replicas=1, node_memory_gib=16, inputs=inputs),
    ]
    assert pareto_front(rows) == [0]
    best = cheapest_meeting(rows, target_recall=0.9, target_p99_ms=None)
    assert best is rows[0]
    assert cheapest_meeting(rows, target_recall=0.9, target_p99_ms=0.7) is None
    assert cheapest_meeting(rows, target_recall=0.5, target_p99_ms=0.7) is rows[2]
