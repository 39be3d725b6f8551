"""The ``tiering`` command line: demo, tiering passes, cost reports, status and sizing."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tiering.errors import TieringError

stdout = Console()
stderr = Console(stderr=True)


@click.group()
@click.option("-v", "--verbose", count=True, help="Log more: -v for INFO, -vv for DEBUG.")
def main(verbose: int) -> None:
    """vector-tiering: keep a vector database small by moving cold embeddings to object storage."""
    levels = {0: logging.WARNING, 1: logging.INFO}
    level = levels.get(verbose, logging.DEBUG)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@contextmanager
def progress_bars(enabled: bool = True) -> Iterator[Any]:
    """Yield a ``(phase, done, total)`` callback that draws one bar per phase on stderr."""
    with Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        disable=not enabled,
        transient=False,
    ) as bars:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update


def fail(exc: TieringError) -> None:
    """Print a library error as one line and exit with status 2."""
    stderr.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    raise SystemExit(2)


@main.command()
@click.option(
    "--backend",
    type=click.Choice(["qdrant", "milvus", "memory"]),
    default="qdrant",
    show_default=True,
    help="Embedded vector store for the hot tier.",
)
@click.option(
    "--base", type=click.Path(path_type=Path), help="Base vectors (.fvecs, .bvecs, .npy, .hdf5, .parquet)."
)
@click.option("--queries", type=click.Path(path_type=Path), help="Query vectors, same formats.")
@click.option(
    "--groundtruth",
    type=click.Path(path_type=Path),
    help="Exact neighbour ids (.ivecs, .npy); computed exactly when left out.",
)
@click.option("--metric", help="cosine, dot or l2 for --base (default l2).")
@click.option("--searches", default=5000, show_default=True, help="Searches in the replayed query stream.")
@click.option("--zipf", "zipf_s", default=1.1, show_default=True, help="Zipf exponent of query popularity.")
@click.option("--seed", default=0, show_default=True, help="Seed of the query stream.")
@click.option(
    "--hot-fraction", default=0.2, show_default=True, help="Hot tier budget as a fraction of vectors."
)
@click.option(
    "--price-model",
    default="pinecone-serverless",
    show_default=True,
    help="pinecone-serverless, zilliz-dedicated, weaviate-cloud or qdrant-ram.",
)
@click.option(
    "--queries-per-month", default=5_000_000.0, show_default=True, help="Query volume the cost model prices."
)
@click.option(
    "--modeled-vectors",
    default=10_000_000,
    show_default=True,
    help="Collection size the cost model prices, at the measured hot fraction.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option(
    "--plot",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a PNG summary (tiers over time, recall, latency, cost) to this file.",
)
def demo(
    backend: str,
    base: Path | None,
    queries: Path | None,
    groundtruth: Path | None,
    metric: str | None,
    searches: int,
    zipf_s: float,
    seed: int,
    hot_fraction: float,
    price_model: str,
    queries_per_month: float,
    modeled_vectors: int,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Tier SIFT small (or your vectors) under a Zipf query stream and report recall, latency and cost."""
    from tiering.demo import DemoSettings, run_demo

    settings = DemoSettings(
        backend=backend,
        base=base,
        queries=queries,
        groundtruth=groundtruth,
        metric=metric,
        searches=searches,
        zipf_s=zipf_s,
        seed=seed,
        hot_fraction=hot_fraction,
        price_model=price_model,
        queries_per_month=queries_per_month,
        modeled_vectors=modeled_vectors,
    )
    try:
        with progress_bars() as update:
            report = run_demo(settings, update)
        if plot is not None:
            from tiering.demo_plot import plot_demo

            plot_demo(report, plot)
    except TieringError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    print_demo_report(report)
    if plot is not None:
        stdout.print(f"Wrote {plot}")


def print_demo_report(report: dict[str, Any]) -> None:
    """Print the demo report as tables."""
    recall_key = next(key for key in report if key.startswith("recall_at_"))
    recall = report[recall_key]
    latency = report["latency_ms"]
    table = Table(
        title=f"{report['dataset']}: {report['vectors']:,} x {report['dim']} on {report['backend']}"
    )
    table.add_column("search")
    table.add_column(recall_key.replace("_", " "), justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p99 ms", justify="right")
    for mode in ("all_hot", "tiered", "hot_only"):
        table.add_row(
            mode.replace("_", " "),
            f"{recall[mode]:.4f}",
            f"{latency[mode]['p50']:.2f}",
            f"{latency[mode]['p99']:.2f}",
        )
    stdout.print(table)
    stdout.print(
        f"hot {report['hot_count']:,} ({report['hot_fraction']:.1%}), cold {report['cold_count']:,}; "
        f"{report['tiering']['passes']} tiering passes demoted {report['tiering']['demoted']:,} and promoted "
        f"{report['tiering']['promoted']:,}; hot-only recall weighted by the stream: "
        f"{recall['hot_only_workload']:.4f}",
        highlight=False,
    )
    stdout.print(
        "Recall is measured on the same queries the stream replayed, so the hot tier was shaped by "
        "them: hot-only recall is an upper bound for unseen queries. p99 over 100 queries x 3 "
        "rounds is noisy.",
        style="dim",
    )
    cost = report["cost_usd_per_month"]
    costs = Table(
        title=f"Monthly cost, {cost['price_model']}, prices dated {cost['prices_dated']}, modeled at "
        f"{cost['modeled_vectors']:,} vectors and {cost['queries_per_month']:,.0f} queries/month"
    )
    costs.add_column("item")
    costs.add_column("before (all hot)", justify="right")
    costs.add_column("after (tiered)", justify="right")
    for item in sorted(set(cost["items_before"]) | set(cost["items_after"])):
        before = cost["items_before"].get(item)
        after = cost["items_after"].get(item)
        costs.add_row(
            item, "" if before is None else f"${before:,.2f}", "" if after is None else f"${after:,.2f}"
        )
    costs.add_row("total", f"${cost['before']:,.2f}", f"${cost['after']:,.2f}", style="bold")
    stdout.print(costs)
    demo_scale = cost["at_demo_scale"]
    stdout.print(
        f"At the demo's own {demo_scale['vectors']:,} vectors: ${demo_scale['before']:,.4f} before, "
        f"${demo_scale['after']:,.4f} after per month. The cold index moves memory into the sidecar "
        "(cold_index.ram); try --price-model qdrant-ram or zilliz-dedicated for other vendors.",
        highlight=False,
    )


@main.command()
@click.option(
    "--price-model",
    default="pinecone-serverless",
    show_default=True,
    help="pinecone-serverless, zilliz-dedicated, weaviate-cloud or qdrant-ram.",
)
@click.option("--vectors", type=int, required=True, help="Total vectors in the collection.")
@click.option("--dim", type=int, required=True, help="Vector dimension.")
@click.option("--hot-fraction", type=float, default=0.2, show_default=True, help="Fraction kept hot.")
@click.option(
    "--queries-per-month", type=float, default=5_000_000.0, show_default=True, help="Queries per month."
)
@click.option(
    "--storage-class",
    default="STANDARD",
    show_default=True,
    help="S3 storage class of cold segments (STANDARD, STANDARD_IA, GLACIER_IR).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def cost(
    price_model: str,
    vectors: int,
    dim: int,
    hot_fraction: float,
    queries_per_month: float,
    storage_class: str,
    as_json: bool,
) -> None:
    """Price a collection all hot versus tiered, from the dated price catalog."""
    from tiering.cost import estimate_tiering_cost

    if not 0.0 <= hot_fraction <= 1.0:
        fail(TieringError(f"Invalid --hot-fraction {hot_fraction}: use a value from 0 to 1."))
    hot = round(vectors * hot_fraction)
    try:
        result = estimate_tiering_cost(
            total_vectors=vectors,
            hot_vectors=hot,
            dim=dim,
            queries_per_month=queries_per_month,
            cold_index_bytes=(vectors - hot) * dim * 4,
            price_model=price_model,
            cold_storage_class=storage_class,
        )
    except TieringError as exc:
        fail(exc)
    document = {
        "price_model": result.price_model,
        "prices_dated": result.prices_dated,
        "before_usd_per_month": result.before_usd_per_month,
        "after_usd_per_month": result.after_usd_per_month,
        "saving_usd_per_month": result.saving_usd_per_month,
        "items_before": result.items_before,
        "items_after": result.items_after,
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    table = Table(
        title=f"{vectors:,} x {dim}, {hot_fraction:.0%} hot, {result.price_model}, "
        f"prices dated {result.prices_dated}"
    )
    table.add_column("item")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    for item in sorted(set(result.items_before) | set(result.items_after)):
        before = result.items_before.get(item)
        after = result.items_after.get(item)
        table.add_row(
            item, "" if before is None else f"${before:,.2f}", "" if after is None else f"${after:,.2f}"
        )
    table.add_row(
        "total", f"${result.before_usd_per_month:,.2f}", f"${result.after_usd_per_month:,.2f}", style="bold"
    )
    stdout.print(table)


@main.command()
@click.option(
    "--backend-url",
    required=True,
    help="Where the hot tier lives: qdrant+local:///dir, qdrant://host:6333, milvus:///file.db.",
)
@click.option("--collection", required=True, help="Collection (index) name in the backend.")
@click.option("--dim", type=int, required=True, help="Vector dimension of the collection.")
@click.option("--metric", default="cosine", show_default=True, help="cosine, dot or l2.")
@click.option(
    "--cold",
    "cold_location",
    default="./tiering-cold",
    show_default=True,
    help="Cold tier: a folder or s3://bucket/prefix.",
)
@click.option("--hot-fraction", type=float, default=0.2, show_default=True, help="Hot budget as a fraction.")
@click.option("--max-hot", type=int, help="Hot budget as a count of vectors.")
@click.option(
    "--min-idle-s",
    type=float,
    default=3600.0,
    show_default=True,
    help="Seconds without reads before a vector may be demoted.",
)
@click.option("--dry-run", is_flag=True, help="Show the plan without moving anything.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def tier(
    backend_url: str,
    collection: str,
    dim: int,
    metric: str,
    cold_location: str,
    hot_fraction: float,
    max_hot: int | None,
    min_idle_s: float,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Run one tiering pass (or plan one with --dry-run) on a collection."""
    from tiering.config import TieringConfig
    from tiering.connect import open_backend_url, open_cold_store
    from tiering.policy import HotBudget, PolicyConfig
    from tiering.store import TieredStore

    try:
        policy = PolicyConfig(
            budget=HotBudget(max_fraction=hot_fraction, max_count=max_hot),
            min_idle_s=min_idle_s,
            cooldown_s=min_idle_s,
        )
        backend = open_backend_url(backend_url, collection, dim, metric)
        with TieredStore(
            backend, open_cold_store(cold_location), config=TieringConfig(policy=policy)
        ) as store:
            result = store.tier(dry_run=dry_run)
            counts = store.count()
    except TieringError as exc:
        fail(exc)
    plan = result.plan
    document = {
        "dry_run": dry_run,
        "demote": len(plan.demote),
        "promote": len(plan.promote),
        "demote_bytes": plan.demote_bytes,
        "promote_bytes": plan.promote_bytes,
        "hot_limit": plan.hot_limit,
        "shortfall": plan.shortfall,
        "demoted": result.demoted,
        "promoted": result.promoted,
        "hot_count": counts.hot,
        "cold_count": counts.cold,
        "duration_s": result.duration_s,
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    for key, value in document.items():
        stdout.print(f"{key:>14}: {value}")


@main.command()
@click.argument("cold_location")
@click.option(
    "--keep-versions", type=int, default=10, show_default=True, help="Newest manifest versions to keep."
)
@click.option(
    "--grace-period-s",
    type=float,
    default=3600.0,
    show_default=True,
    help="Leave anything younger than this many seconds.",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted without deleting it.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def gc(cold_location: str, keep_versions: int, grace_period_s: float, dry_run: bool, as_json: bool) -> None:
    """Delete old manifest versions and segments that no kept version lists.

    COLD_LOCATION is a cold tier folder or s3://bucket/prefix.
    """
    from tiering.connect import open_cold_store
    from tiering.gc import collect_garbage

    try:
        report = collect_garbage(
            open_cold_store(cold_location),
            keep_versions=keep_versions,
            grace_period_s=grace_period_s,
            dry_run=dry_run,
        )
    except TieringError as exc:
        fail(exc)
    document = {
        "dry_run": report.dry_run,
        "kept_versions": list(report.kept_versions),
        "expired_manifests": len(report.expired_manifests),
        "deleted_segments": len(report.deleted_segments),
        "deleted_bytes": report.deleted_bytes,
        "young_segments_left": len(report.young_segments),
    }
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    for key, value in document.items():
        stdout.print(f"{key:>20}: {value}", highlight=False)


@main.command()
@click.argument("cold_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(cold_dir: Path, as_json: bool) -> None:
    """Show the manifest, segments and pending moves of a cold tier folder."""
    from tiering.status import read_status

    try:
        document = read_status(cold_dir)
    except TieringError as exc:
        fail(exc)
    if as_json:
        click.echo(json.dumps(document, indent=2))
        return
    for key, value in document.items():
        stdout.print(f"{key:>22}: {value}")


def _register_optional_commands() -> None:
    # Each command needs its own extra (sizing: matplotlib; serve: fastapi, uvicorn);
    # a missing extra hides that command only.
    try:
        from tiering.sizing.command import size

        main.add_command(size)
    except ImportError as exc:
        logging.getLogger(__name__).debug("tiering size is unavailable: %s", exc)
    try:
        from tiering.service.command import serve

        main.add_command(serve)
    except ImportError as exc:
        logging.getLogger(__name__).debug("tiering serve is unavailable: %s", exc)


_register_optional_commands()
