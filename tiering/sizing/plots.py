"""PNG plots of a sizing run (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tiering.sizing.summary import SizingRow


def write_plots(rows: Sequence[SizingRow], front: Sequence[int], folder: Path) -> list[Path]:
    """Write recall-vs-shards, latency-vs-shards and cost-vs-recall plots; return the paths.

    The first two use one replica and the smallest node size, so each configuration
    appears once; lines are per routing and hot fraction.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return []
    base_rows = [
        r for r in rows
        if r.replicas == min(x.replicas for x in rows)
        and r.node_memory_gib == min(x.node_memory_gib for x in rows)
    ]
    lines: dict[str, list[SizingRow]] = defaultdict(list)
    for row in base_rows:
        lines[f"{row.routing}, {row.index}, hot {row.hot_fraction:g}"].append(row)

    paths = []
    for name, attribute, ylabel in (
        ("recall_vs_shards", "recall_at_k", "recall@k"),
        ("latency_vs_shards", "p99_ms", "p99 latency, ms (serial)"),
        ("work_vs_shards", "distance_count_mean", "distance computations per query"),
    ):
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for label, series in sorted(lines.items()):
            series = sorted(series, key=lambda r: r.shards)
            axes.plot(
                [r.shards for r in series], [getattr(r, attribute) for r in series],
                marker="o", label=label,
            )
        axes.set_xscale("log", base=2)
        axes.set_xlabel("shards")
        axes.set_ylabel(ylabel)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
        figure.tight_layout()
        path = folder / f"{name}.png"
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)

    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.scatter(
        [r.recall_at_k for r in rows], [r.cost_usd_per_month for r in rows],
        s=14, color="0.6", label="configurations",
    )
    front_rows = sorted((rows[i] for i in front), key=lambda r: r.recall_at_k)
    axes.plot(
        [r.recall_at_k for r in front_rows], [r.cost_usd_per_month for r in front_rows],
        marker="o", color="C3", label="Pareto front",
    )
    axes.set_xlabel("recall@k")
    axes.set_ylabel(f"USD per month ({rows[0].price_model})")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = folder / "cost_vs_recall.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    paths.append(path)
    return paths
