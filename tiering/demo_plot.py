"""A one-page picture of a demo report: tiers over time, recall, latency and cost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tiering.errors import ConfigurationError


def plot_demo(report: dict[str, Any], path: Path) -> None:
    """Write a PNG with four panels summarising ``report`` (from :func:`run_demo`).

    Raises:
        ConfigurationError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigurationError("--plot needs matplotlib: pip install 'vector-tiering[sizing]'.") from exc

    recall_key = next(key for key in report if key.startswith("recall_at_"))
    modes = ["all_hot", "tiered", "hot_only"]
    labels = ["all hot", "tiered", "hot only"]
    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5))

    timeline = report["tiering"]["timeline"]
    times = [point["simulated_s"] for point in timeline]
    axes[0][0].step(times, [point["hot_count"] for point in timeline], where="post", label="hot")
    axes[0][0].step(times, [point["cold_count"] for point in timeline], where="post", label="cold")
    axes[0][0].set(
        title="Vectors per tier after each pass", xlabel="simulated seconds (1 search/s)", ylabel="vectors"
    )
    axes[0][0].legend()

    recall = report[recall_key]
    axes[0][1].bar(labels, [recall[mode] for mode in modes], color=["#4c72b0", "#55a868", "#c44e52"])
    axes[0][1].set(title=f"{recall_key.replace('_', ' ')} over every query", ylim=(0, 1.05))
    for position, mode in enumerate(modes):
        axes[0][1].annotate(f"{recall[mode]:.3f}", (position, recall[mode]), ha="center", va="bottom")

    latency = report["latency_ms"]
    positions = range(len(modes))
    axes[1][0].bar([p - 0.2 for p in positions], [latency[m]["p50"] for m in modes], width=0.4, label="p50")
    axes[1][0].bar([p + 0.2 for p in positions], [latency[m]["p99"] for m in modes], width=0.4, label="p99")
    axes[1][0].set_xticks(list(positions), labels)
    axes[1][0].set(title=f"Search latency on {report['backend']}", ylabel="ms")
    axes[1][0].legend()

    cost = report["cost_usd_per_month"]
    axes[1][1].bar(
        ["before (all hot)", "after (tiered)"], [cost["before"], cost["after"]], color=["#8c8c8c", "#55a868"]
    )
    axes[1][1].set(
        title=f"{cost['price_model']} at {cost['modeled_vectors']:,} vectors (prices {cost['prices_dated']})",
        ylabel="USD per month",
    )

    figure.suptitle(
        f"{report['dataset']}: {report['vectors']:,} x {report['dim']}, "
        f"{report['hot_fraction']:.0%} hot after {report['tiering']['passes']} passes"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
