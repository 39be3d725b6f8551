"""Recorded sizing sweeps for docs/sizing.md.

Runs ``tiering size`` in process for each named suite and writes its outputs to
``docs/sizing-results/<suite>/``. It adds ``ratios.md``, which compares every
configuration with one shard at the same hot fraction in the same run. Absolute
times on a shared machine are noisy, so ratios within a run are what to compare.

Usage::

    python3 benchmarks/sizing_sweep.py siftsmall minilm      # minutes
    python3 benchmarks/sizing_sweep.py synthetic-200k        # about 10 minutes on 2 cores
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tiering.sizing.command import size

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "sizing-results"

COMMON = ["--query-count", "1000", "--zipf", "1.0", "--concurrency", "2", "--k", "10",
          "--target-qps", "20000", "--queries-per-month", "10000000"]
SUITES: dict[str, list[str]] = {
    "siftsmall": [
        "--dataset", "siftsmall", "--shards", "1,2,4,8", "--routing", "all,nearest:1,nearest:2",
        "--index", "hnsw:M=16,ef=32", "--replicas", "1,2,3", "--hot-fraction", "1,0.2",
        "--target-recall", "0.95", "--runs", "3", *COMMON,
    ],
    "minilm": [
        "--dataset", "minilm-debian-10k", "--shards", "1,2,4,8",
        "--routing", "all,nearest:1,nearest:2", "--index", "hnsw:M=16,ef=32",
        "--replicas", "1,2,3", "--hot-fraction", "1,0.2", "--target-recall", "0.95", "--runs", "3",
        *COMMON,
    ],
    "synthetic-200k": [
        "--synthetic", "200000,128", "--synthetic-queries", "500", "--shards", "1,2,4,8,16",
        "--routing", "all,nearest:1", "--index", "hnsw:M=16,ef=32",
        "--hot-fraction", "1,0.5,0.2", "--cold-index", "ivf:nlist=1024,nprobe=32",
        "--replicas", "1,2", "--node-memory", "16,64", "--target-recall", "0.9", "--runs", "2",
        *COMMON,
    ],
}


def run_suite(name: str) -> dict[str, Any]:
    """Run one suite into its results folder and return what was run and how long it took."""
    out = RESULTS / name
    args = [*SUITES[name], "--out", str(out)]
    load_before = os.getloadavg()
    started = time.perf_counter()
    size.main(args, prog_name="tiering size", standalone_mode=False)
    wall_s = time.perf_counter() - started
    run = {
        "suite": name,
        "command": "tiering size " + " ".join(args[:-2]) + f" --out docs/sizing-results/{name}",
        "wall_s": round(wall_s, 1),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    (out / "ratios.md").write_text(ratios_markdown(summary["rows"]), encoding="utf-8")
    return run


def ratios_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Return a Markdown table of each configuration relative to 1 shard, same run.

    Uses replicas = 1 and the smallest node size so each configuration appears once.
    """
    replicas = min(r["replicas"] for r in rows)
    node = min(r["node_memory_gib"] for r in rows)
    base_rows = [r for r in rows if r["replicas"] == replicas and r["node_memory_gib"] == node]
    reference = {
        (r["routing"], r["hot_fraction"]): r
        for r in base_rows
        if r["shards"] == 1 and r["routing"] == "all"
    }
    lines = [
        "| routing | hot | shards | recall@10 | recall - 1 shard | hot-tier distances x "
        "| p50 x | QPS x | self-hosted USD x | Pinecone USD x |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(base_rows, key=lambda r: (r["routing"], -r["hot_fraction"], r["shards"])):
        ref = reference.get(("all", r["hot_fraction"]))
        if ref is None:
            continue
        lines.append(
            f"| {r['routing']} | {r['hot_fraction']:g} | {r['shards']} | {r['recall_at_k']:.4f} "
            f"| {r['recall_at_k'] - ref['recall_at_k']:+.4f} "
            f"| {r['hot_distance_count_mean'] / ref['hot_distance_count_mean']:.2f} "
            f"| {r['p50_ms'] / ref['p50_ms']:.2f} | {r['qps'] / ref['qps']:.2f} "
            f"| {_ratio(r, ref, 'self-hosted')} | {_ratio(r, ref, 'pinecone-serverless')} |"
        )
    lines.append("")
    lines.append(
        "Reference: 1 shard with `all` routing at the same hot fraction, replicas = "
        f"{replicas}, {node:g} GiB nodes, same run."
    )
    return "\n".join(lines) + "\n"


def _ratio(row: dict[str, Any], ref: dict[str, Any], model: str) -> str:
    return f"{row['cost_by_model'][model] / ref['cost_by_model'][model]:.2f}"


def main(names: Sequence[str]) -> None:
    """Run the named suites (all when none is named)."""
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise SystemExit(f"Unknown suite {unknown[0]!r}. Use any of: {', '.join(SUITES)}.")
    for name in names or list(SUITES):
        run = run_suite(name)
        print(f"{name}: {run['wall_s']} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
