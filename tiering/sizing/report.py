"""Output of a sizing run: the terminal table, CSV, JSON summary and the Markdown report."""

from __future__ import annotations

import csv
import json
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tiering.sizing.summary import SizingRow

CSV_FIELDS = (
    "shards", "routing", "index", "replicas", "node_memory_gib", "hot_fraction",
    "recall_at_k", "p50_ms", "p95_ms", "p99_ms", "qps", "distance_count_mean",
    "hot_distance_count_mean",
    "shards_searched_mean", "index_bytes_total", "index_bytes_max_shard", "cold_index_bytes",
    "build_s", "nodes_for_memory", "nodes_for_throughput", "nodes", "fits_in_memory",
    "cold_tier_usd_per_month", "cost_usd_per_month", "price_model",
)
VERSIONED_PACKAGES = ("vector-tiering", "faiss-cpu", "numpy", "qdrant-client", "pymilvus",
                      "milvus-lite", "matplotlib", "click", "rich")


def render_table(rows: Sequence[SizingRow], console: Console, *, title: str) -> None:
    """Print the rows as a table; ``*`` marks the Pareto front (cost vs recall)."""
    table = Table(title=title, show_lines=False)
    for name in ("shards", "routing", "index", "repl", "node GiB", "hot", "recall@k",
                 "p50 ms", "p99 ms", "QPS", "dist/query", "nodes", "USD/month"):
        table.add_column(name, justify="right" if name not in ("routing", "index") else "left")
    for row in rows:
        table.add_row(
            str(row.shards), row.routing, row.index, str(row.replicas),
            f"{row.node_memory_gib:g}", f"{row.hot_fraction:g}", f"{row.recall_at_k:.4f}",
            f"{row.p50_ms:.3f}", f"{row.p99_ms:.3f}", f"{row.qps:,.0f}",
            f"{row.distance_count_mean:,.0f}",
            str(row.nodes) + ("" if row.fits_in_memory else " (too big)"),
            f"{row.cost_usd_per_month:,.2f}",
        )
    console.print(table)


def write_csv(rows: Sequence[SizingRow], path: Path) -> None:
    """Write one CSV line per row with :data:`CSV_FIELDS` plus one column per price model."""
    models = sorted(rows[0].cost_by_model) if rows else []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*CSV_FIELDS, *(f"cost_{m}_usd_per_month" for m in models)])
        for row in rows:
            values = row.as_dict()
            writer.writerow(
                [values[f] for f in CSV_FIELDS] + [row.cost_by_model[m] for m in models]
            )


def environment() -> dict[str, Any]:
    """Return the machine and package versions a run was measured with."""
    versions: dict[str, str | None] = {}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": _cpu_model(),
        "cores": _core_count(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _core_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) * 1024 / 2**30, 1)
    except OSError:
        pass
    return None


def write_json(summary: dict[str, Any], path: Path) -> None:
    """Write the summary (parameters, environment, rows, choice) as indented JSON."""
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")


def write_markdown(
    summary: dict[str, Any],
    rows: Sequence[SizingRow],
    best: SizingRow | None,
    front: Sequence[int],
    plots: Sequence[Path],
    path: Path,
) -> None:
    """Write a Markdown report naming the cheapest configuration that meets the targets."""
    targets = summary["targets"]
    env = summary["environment"]

    lines = [
        f"# Sizing report: {summary['data']['name']}",
        "",
        f"Data: {summary['data']['n_base']:,} x {summary['data']['dim']} vectors, metric "
        f"{summary['data']['metric']}; workload: {summary['workload']['query_count']:,} "
        f"queries, k={summary['workload']['k']}, Zipf skew {summary['workload']['zipf']}, "
        f"concurrency {summary['workload']['concurrency']}.",
        f"Prices dated {summary['prices_dated']} (price model for the choice: "
        f"{summary['price_model']}); {summary['queries_per_month']:,.0f} queries per month, "
        f"target {targets['qps']:g} QPS.",
        f"Machine: {env['cpu']}, {env['cores']} cores, {env['ram_gib']} GiB RAM; "
        f"wall time {summary['wall_s']:.1f} s.",
        "",
        "## Choice",
        "",
    ]

    p99_text = "no p99 target" if targets["p99_ms"] is None else f"p99 <= {targets['p99_ms']} ms"
    if best is None:
        lines.append(
            f"No configuration reaches recall@k >= {targets['recall']} with {p99_text}."
        )
    else:
        lines.append(
            f"Cheapest configuration with recall@k >= {targets['recall']} and {p99_text}: "
            f"**{count_label(best.shards, 'shard')}, routing {best.routing}, "
            f"index {best.index}, {count_label(best.replicas, 'replica')}, "
            f"{best.node_memory_gib:g} GiB nodes, hot fraction {best.hot_fraction:g}**: "
            f"recall {best.recall_at_k:.4f}, p99 {best.p99_ms:.3f} ms, "
            f"{best.nodes} nodes, ${best.cost_usd_per_month:,.2f} per month."
        )

    lines += ["", "## All configurations", "", "`*` marks the Pareto front of cost vs recall.", ""]
    lines.append(
        "| | shards | routing | index | replicas | node GiB | hot | recall@k | p50 ms | p99 ms "
        "| QPS | distances/query | nodes | USD/month |"
    )
    lines.append("|" + "---|" * 14)
    front_set = set(front)
    for i, row in enumerate(rows):
        lines.append(
            f"| {'*' if i in front_set else ''} | {row.shards} | {row.routing} | {row.index} "
            f"| {row.replicas} | {row.node_memory_gib:g} | {row.hot_fraction:g} "
            f"| {row.recall_at_k:.4f} | {row.p50_ms:.3f} | {row.p99_ms:.3f} | {row.qps:,.0f} "
            f"| {row.distance_count_mean:,.0f} | {row.nodes} | {row.cost_usd_per_month:,.2f} |"
        )

    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"![{plot.stem}]({plot.name})" for plot in plots]
    lines += [
        "",
        "Latency is serial (one query at a time, shards searched one after the other on one "
        "core); QPS is measured with the given number of threads on this machine.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def count_label(number: int, noun: str) -> str:
    """Return ``1 shard`` or ``2 shards``."""
    return f"{number} {noun}" + ("" if number == 1 else "s")


