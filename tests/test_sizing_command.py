"""End-to-end runs of ``tiering size`` through click's CliRunner, and its input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tiering.datasets import load_bundled
from tiering.sizing.command import size
from tiering.sizing.records import read_records

REQUIRED_KEYS = {
    "shards", "routing", "replicas", "hot_fraction", "recall_at_k", "p99_ms", "qps", "nodes",
    "cost_usd_per_month",
}


@pytest.fixture(scope="module")
def npy_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sizing")
    data = load_bundled("minilm-debian-10k")
    np.save(folder / "base.npy", data.base[:2000])
    np.save(folder / "queries.npy", data.queries[:40])
    return folder


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(size, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_documented_command_line(npy_files: Path) -> None:
    code, stdout, stderr = _invoke(
        "--base", str(npy_files / "base.npy"), "--queries", str(npy_files / "queries.npy"),
        "--metric", "cosine", "--shards", "1,2,4,8", "--routing", "all,nearest:1",
        "--index", "hnsw:M=16,ef=32", "--replicas", "1,2", "--hot-fraction", "1,0.2",
        "--query-count", "60", "--json",
    )
    assert code == 0, stderr
    rows = json.loads(stdout)
    assert len(rows) == 4 * 2 * 2 * 2
    for row in rows:
        assert set(row) >= REQUIRED_KEYS
        assert 0 <= row["recall_at_k"] <= 1
        assert row["p99_ms"] > 0
        assert row["qps"] > 0
        assert row["nodes"] >= row["replicas"]
        assert row["cost_usd_per_month"] > 0
    single = [r for r in rows if r["shards"] == 1 and r["hot_fraction"] == 1 and r["replicas"] == 1]
    assert all(r["recall_at_k"] > 0.8 for r in single)
    doubled = {(r["shards"], r["routing"], r["hot_fraction"]): r for r in rows if r["replicas"] == 2}
    for r in rows:
        if r["replicas"] == 1:
            twin = doubled[(r["shards"], r["routing"], r["hot_fraction"])]
            assert twin["nodes"] == 2 * r["nodes"]
            assert twin["cost_usd_per_month"] > r["cost_usd_per_month"]


def test_out_folder_outputs(npy_files: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, stdout, stderr = _invoke(
        "--synthetic", "1500,16", "--synthetic-queries", "20", "--shards", "1,2",
        "--routing", "all,nearest:1", "--index", "flat", "--index", "hnsw:M=8,ef=16",
        "--hot-fraction", "1,0.5", "--query-count", "30", "--target-recall", "0.5", "--runs", "2",
        "--out", str(out),
    )
    assert code == 0, stderr
    for name in ("records.jsonl.gz", "summary.csv", "summary.json", "report.md",
                 "recall_vs_shards.png", "latency_vs_shards.png", "cost_vs_recall.png"):
        assert (out / name).stat().st_size > 0, name
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["rows"]) == 2 * 2 * 2 * 2
    assert summary["best"] is not None
    assert summary["prices_dated"] == "2026-12"
    assert "Cheapest configuration" in (out / "report.md").read_text()
    flat_all = [r for r in summary["rows"] if r["index"] == "flat" and r["routing"] == "all"]
    assert all(r["recall_at_k"] == 1.0 for r in flat_all)
    records = list(read_records(out / "records.jsonl.gz"))
    assert len(records) == 16
    first = records[0].queries[0]
    assert len(first["latency_runs_s"]) == 2
    assert first["latency_s"] == min(first["latency_runs_s"])
    assert len(records[0].throughput["wall_runs_s"]) == 2
    assert "Cheapest meeting the targets" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "siftsmall", "--metric", "hamming"], "Unknown metric 'hamming'"),
        (["--dataset", "siftsmall", "--shards", "1,x"], "'x' in --shards"),
        (["--dataset", "siftsmall", "--index", "hnsw:M=abc"], "hnsw:M=abc"),
        (["--dataset", "siftsmall", "--routing", "nearest"], "Invalid routing 'nearest'"),
        (["--base", "/nonexistent/base.npy"], "does not exist"),
        (["--synthetic", "50,4", "--shards", "64"], "Shard count 64 is larger than the data"),
        (["--synthetic", "50,4", "--shards", "8", "--hot-fraction", "0.1"], "Use fewer shards"),
        ([], "exactly one data source"),
        (["--dataset", "siftsmall", "--backend", "qdrant", "--index", "flat", "--index", "ivf"],
         "--index applies to FAISS shards only"),
        (["--dataset", "siftsmall", "--cold-index", "hnsw:M=8"], "flat or ivf"),
    ],
)
def test_bad_input_named(args: list[str], message: str) -> None:
    code, _stdout, stderr = _invoke(*args)
    assert code != 0
    assert message in stderr


def test_custom_price_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "prices.json"
    catalog.write_text('{"date_read": "2027-01", "prices": [], "rules": []}')
    code, stdout, stderr = _invoke("--synthetic", "200,4", "--shards", "1", "--routing", "all",
                                   "--query-count", "5", "--prices", str(catalog), "--json")
    assert code != 0
    assert "has no rule entry" in stderr
    assert stdout == ""
