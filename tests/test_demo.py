"""The demo on SIFT small and on users' own files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tiering.cli import main
from tiering.demo import DemoSettings, run_demo, zipf_stream
from tiering.errors import ValidationError


@pytest.mark.slow
def test_demo_on_sift_small_meets_targets():
    result = CliRunner().invoke(main, ["demo", "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    recall = report["recall_at_10"]
    assert report["backend"] == "qdrant"
    assert report["hot_fraction"] <= 0.2
    assert report["hot_count"] + report["cold_count"] == 10_000
    assert recall["all_hot"] >= 0.99
    assert recall["tiered"] >= 0.99 * recall["all_hot"]
    assert recall["hot_only"] < recall["tiered"]
    cost = report["cost_usd_per_month"]
    assert cost["after"] < cost["before"]
    assert cost["prices_dated"]


def test_demo_small_run_on_memory_backend():
    report = run_demo(DemoSettings(backend="memory", searches=600, pass_every=100, latency_rounds=1))

    assert set(report["recall_at_10"]) == {"all_hot", "tiered", "hot_only", "hot_only_workload"}
    assert report["hot_fraction"] <= 0.2
    assert report["recall_at_10"]["tiered"] == pytest.approx(report["recall_at_10"]["all_hot"])
    assert report["tiering"]["demoted"] >= 8000


def test_demo_plot_and_timeline(tmp_path):
    plot = tmp_path / "demo.png"

    result = CliRunner().invoke(
        main, ["demo", "--backend", "memory", "--searches", "600", "--plot", str(plot), "--json"]
    )

    assert result.exit_code == 0, result.output
    timeline = json.loads(result.stdout)["tiering"]["timeline"]
    assert timeline[-1]["hot_count"] == 2000
    assert timeline[-1]["cold_count"] == 8000
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_on_user_files_without_ground_truth(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.random((400, 12), dtype=np.float32)
    queries = rng.random((20, 12), dtype=np.float32)
    np.save(tmp_path / "base.npy", base)
    np.save(tmp_path / "queries.npy", queries)

    result = CliRunner().invoke(
        main,
        [
            "demo",
            "--backend",
            "memory",
            "--base",
            str(tmp_path / "base.npy"),
            "--queries",
            str(tmp_path / "queries.npy"),
            "--metric",
            "cosine",
            "--searches",
            "300",
            "--json",
        ],
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "cosine"
    assert report["vectors"] == 400
    assert report["recall_at_10"]["all_hot"] == pytest.approx(1.0)


def test_demo_rejects_bad_input(tmp_path):
    np.save(tmp_path / "base.npy", np.zeros((10, 4), np.float32))
    np.save(tmp_path / "queries.npy", np.zeros((2, 5), np.float32))
    runner = CliRunner()

    mismatch = runner.invoke(
        main,
        [
            "demo",
            "--backend",
            "memory",
            "--base",
            str(tmp_path / "base.npy"),
            "--queries",
            str(tmp_path / "queries.npy"),
        ],
    )
    missing = runner.invoke(
        main,
        [
            "demo",
            "--backend",
            "memory",
            "--base",
            str(tmp_path / "nope.fvecs"),
            "--queries",
            str(tmp_path / "queries.npy"),
        ],
    )
    metric = runner.invoke(
        main,
        [
            "demo",
            "--backend",
            "memory",
            "--base",
            str(tmp_path / "base.npy"),
            "--queries",
            str(tmp_path / "base.npy"),
            "--metric",
            "hamming",
        ],
    )

    assert mismatch.exit_code == 2
    assert "4-d but queries are 5-d" in mismatch.output
    assert missing.exit_code == 2
    assert "nope.fvecs not found" in missing.output
    assert metric.exit_code == 2
    assert "Unknown metric 'hamming'" in metric.output


def test_demo_settings_checked():
    with pytest.raises(ValidationError, match=r"hot fraction 1\.5"):
        run_demo(DemoSettings(backend="memory", hot_fraction=1.5))


def test_zipf_stream_is_skewed_and_seeded():
    first = zipf_stream(100, 5000, 1.1, np.random.default_rng(0))
    second = zipf_stream(100, 5000, 1.1, np.random.default_rng(0))
    counts = np.sort(np.bincount(first, minlength=100))[::-1]

    assert np.array_equal(first, second)
    assert counts[0] > 10 * counts[50]


def _demo(*arguments: str):
    return CliRunner().invoke(main, ["demo", "--backend", "memory", *arguments])


def test_demo_checks_user_files(tmp_path):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "base.npy", rng.random((50, 4), dtype=np.float32))
    np.save(tmp_path / "queries.npy", rng.random((3, 4), dtype=np.float32))
    np.save(tmp_path / "ids.npy", np.full((3, 10), 999, dtype=np.int32))
    np.save(tmp_path / "tiny.npy", rng.random((5, 4), dtype=np.float32))
    with_nan = rng.random((20, 4), dtype=np.float32)
    with_nan[7, 2] = np.nan
    np.save(tmp_path / "nan.npy", with_nan)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    base, queries = str(tmp_path / "base.npy"), str(tmp_path / "queries.npy")

    cases = {
        "ids from 999 to 999": _demo(
            "--base", base, "--queries", queries, "--groundtruth", str(tmp_path / "ids.npy")
        ),
        "row 7": _demo("--base", str(tmp_path / "nan.npy"), "--queries", queries),
        "fewer than k=10": _demo("--base", str(tmp_path / "tiny.npy"), "--queries", queries),
        "plain numeric .npy": _demo("--base", str(tmp_path / "objects.npy"), "--queries", queries),
        "missing[v2].npy not found": _demo("--base", str(tmp_path / "missing[v2].npy"), "--queries", queries),
        "pass --base as well": _demo("--metric", "cosine"),
        "Zipf exponent -1.0": _demo("--zipf", "-1"),
    }

    for expected, result in cases.items():
        assert result.exit_code == 2, (expected, result.output)
        assert expected in result.output, (expected, result.output)
        assert "Traceback" not in result.output


def test_demo_reads_ann_benchmarks_hdf5_alone(tmp_path):
    import h5py

    from tiering.datasets import exact_ground_truth
    from tiering.records import Metric

    rng = np.random.default_rng(3)
    train = rng.random((300, 8), dtype=np.float32)
    test = rng.random((10, 8), dtype=np.float32)
    with h5py.File(tmp_path / "set.hdf5", "w") as handle:
        handle["train"] = train
        handle["test"] = test
        handle["neighbors"] = exact_ground_truth(train, test, 10, Metric.COSINE)
        handle.attrs["distance"] = "angular"

    result = _demo("--base", str(tmp_path / "set.hdf5"), "--searches", "200", "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["metric"] == "cosine"
    assert report["recall_at_10"]["all_hot"] == pytest.approx(1.0)
