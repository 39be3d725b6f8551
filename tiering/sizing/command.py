"""The ``tiering size`` command: sweep sharding, routing, replicas and hot fraction.

Registered by the main CLI with ``from tiering.sizing.command import size``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tiering.cost import (
    PRICE_MODELS,
    STORAGE_CLASSES,
    estimate_tiering_cost,
    zilliz_dedicated_usd_per_month,
)
from tiering.datasets import BUNDLED
from tiering.errors import TieringError, ValidationError
from tiering.prices import Catalog, load_catalog
from tiering.records import Metric
from tiering.sizing import plots, report, specs
from tiering.sizing.engines import BACKENDS
from tiering.sizing.records import RunRecord, write_records
from tiering.sizing.runner import SweepConfig, run_sweep
from tiering.sizing.summary import (
    SIZING_PRICE_MODELS,
    CostInputs,
    SizingRow,
    cheapest_meeting,
    measure,
    pareto_front,
    price_row,
)
from tiering.sizing.workload import draw_workload, load_sizing_data

T = TypeVar("T")
_EXISTING_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _parsed(parser: Callable[[str], T]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    def callback(_context: click.Context, parameter: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            if isinstance(value, tuple):
                return tuple(parser(item) for item in value)
            return parser(value)
        except ValidationError as exc:
            raise click.BadParameter(str(exc), param=parameter) from exc

    return callback


class _RichProgress:
    """Shows one progress bar per configuration on stderr."""

    def __init__(self, progress: Progress, total_configs: int) -> None:
        self._progress = progress
        self._task: Any = None
        self._number = 0
        self._total = total_configs

    def start(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, visible=False)
        self._number += 1
        self._task = self._progress.add_task(
            f"[{self._number}/{self._total}] {description}", total=total
        )

    def advance(self, steps: int) -> None:
        self._progress.advance(self._task, steps)


@click.command("size")
@click.option("--dataset", type=click.Choice(BUNDLED), help="Bundled data set to use.")
@click.option("--base", type=_EXISTING_FILE,
              help="Base vectors: .fvecs/.bvecs, .npy, ann-benchmarks .hdf5 or Parquet.")
@click.option("--queries", type=_EXISTING_FILE, help="Query vectors, in a format like --base.")
@click.option("--groundtruth", type=_EXISTING_FILE,
              help="Exact neighbour ids per query (.ivecs, .npy, .hdf5, Parquet); "
              "computed exactly when left out.")
@click.option("--synthetic", callback=_parsed(specs.parse_synthetic), metavar="N,DIM",
              help="Seeded synthetic clustered data of N vectors of dimension DIM.")
@click.option("--synthetic-queries", type=click.IntRange(1), default=200, show_default=True,
              help="Query pool size for --synthetic.")
@click.option("--metric", callback=_parsed(Metric.parse),
              help="cosine, dot or l2; defaults to the data set's metric (l2 for files).")
@click.option("--k", "k", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="Neighbours per query; recall is measured at this k.")
@click.option("--query-count", type=click.IntRange(1), default=1000, show_default=True,
              help="Queries in the stream, drawn from the query pool.")
@click.option("--zipf", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Zipf skew of the query stream over the pool (0 = uniform).")
@click.option("--concurrency", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Threads in the throughput pass.")
@click.option("--shards", default="1,2,4,8", show_default=True,
              callback=_parsed(lambda v: specs.parse_int_list(v, "--shards")),
              help="Shard counts to sweep, comma-separated.")
@click.option("--routing", default="all,nearest:1", show_default=True,
              callback=_parsed(lambda v: [specs.parse_routing(p) for p in v.split(",")]),
              help="Routings to sweep: all (fan out) and/or nearest:P (P nearest k-means shards).")
@click.option("--index", "indexes", multiple=True, default=("hnsw:M=16,ef=32",),
              show_default=True, callback=_parsed(specs.parse_index),
              help="Per-shard FAISS index; repeat to sweep: flat, hnsw:M=..,ef=.. or "
              "ivf:nlist=..,nprobe=..")
@click.option("--replicas", default="1", show_default=True,
              callback=_parsed(lambda v: specs.parse_int_list(v, "--replicas")),
              help="Replica counts to price, comma-separated.")
@click.option("--node-memory", default="16", show_default=True,
              callback=_parsed(lambda v: specs.parse_int_list(v, "--node-memory")),
              help="Node RAM sizes in GiB to price, comma-separated.")
@click.option("--hot-fraction", default="1", show_default=True,
              callback=_parsed(lambda v: specs.parse_fraction_list(v, "--hot-fraction")),
              help="Fractions of the vectors kept hot, comma-separated; the rest go to the "
              "cold tier.")
@click.option("--cold-index", default="flat", show_default=True,
              callback=_parsed(specs.parse_index),
              help="FAISS index over the cold vectors: flat or ivf:nlist=..,nprobe=..")
@click.option("--backend", type=click.Choice(BACKENDS), default="faiss", show_default=True,
              help="Where shards live: FAISS indexes, Qdrant local mode or Milvus Lite.")
@click.option("--price-model", type=click.Choice(SIZING_PRICE_MODELS), default="self-hosted",
              show_default=True, help="Price model for cost_usd_per_month and the choice.")
@click.option("--cold-storage-class", type=click.Choice(STORAGE_CLASSES), default="STANDARD",
              show_default=True, help="S3 storage class of the cold tier.")
@click.option("--queries-per-month", type=click.FloatRange(0), default=10_000_000,
              show_default=True, help="Query volume used for read-unit and GET costs.")
@click.option("--target-qps", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Peak queries per second the nodes must serve (0 = no throughput sizing).")
@click.option("--target-recall", type=click.FloatRange(0, 1), default=0.9, show_default=True,
              help="Recall@k the chosen configuration must reach.")
@click.option("--target-p99-ms", type=click.FloatRange(0), default=None,
              help="p99 serial latency in ms the chosen configuration must meet.")
@click.option("--prices", "prices_path", type=_EXISTING_FILE,
              help="Price catalog JSON to use instead of the shipped one.")
@click.option("--runs", type=click.IntRange(1, 20), default=1, show_default=True,
              help="Repeat the latency and throughput passes; the fastest run counts.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for data and workload.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for raw records, CSV, JSON summary, PNG plots and a report.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary rows as JSON on stdout.")
def size(**options: Any) -> None:
    """Measure recall, latency, throughput and monthly cost over a sweep of shard counts,
    routings, per-shard indexes, replicas, node sizes and hot fractions."""
    try:
        _run(**options)
    except TieringError as exc:
        raise click.ClickException(str(exc)) from exc


def _run(
    *,
    dataset: str | None,
    base: Path | None,
    queries: Path | None,
    groundtruth: Path | None,
    synthetic: tuple[int, int] | None,
    synthetic_queries: int,
    metric: Metric | None,
    k: int,
    query_count: int,
    zipf: float,
    concurrency: int,
    shards: list[int],
    routing: list[specs.RoutingSpec],
    indexes: tuple[specs.IndexSpec, ...],
    replicas: list[int],
    node_memory: list[int],
    hot_fraction: list[float],
    cold_index: specs.IndexSpec,
    backend: str,
    price_model: str,
    cold_storage_class: str,
    queries_per_month: float,
    target_qps: float,
    target_recall: float,
    target_p99_ms: float | None,
    prices_path: Path | None,
    runs: int,
    seed: int,
    out_dir: Path | None,
    as_json: bool,
) -> None:
    started = time.perf_counter()
    catalog = load_catalog(prices_path)
    errors = Console(stderr=True)
    if not errors.is_terminal:
        errors = Console(stderr=True, width=160)
    if queries is not None and base is None:
        raise ValidationError("--queries needs --base. Pass the base vectors too.")
    if backend != "faiss" and len(indexes) > 1:
        raise ValidationError(
            f"--backend {backend} chooses its own index, so --index applies to FAISS shards "
            "only. Pass --index once or use --backend faiss."
        )
    _check_catalog(catalog, cold_storage_class)
    if cold_index.kind == "hnsw":
        raise ValidationError(
            f"Invalid --cold-index {cold_index.label!r}: the cold tier uses flat or ivf indexes."
        )

    progress_columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )
    with Progress(*progress_columns, console=errors, transient=True) as progress:
        truth_task = progress.add_task("loading data and ground truth", total=None)
        data = load_sizing_data(
            dataset=dataset, base=base, queries=queries, groundtruth=groundtruth,
            synthetic=synthetic, metric=metric, k=k, synthetic_queries=synthetic_queries,
            seed=seed, progress=lambda n: progress.advance(truth_task, n),
        )
        progress.update(truth_task, visible=False)
        workload = draw_workload(
            len(data.queries), query_count=query_count, k=k, zipf=zipf,
            concurrency=concurrency, seed=seed,
        )
        config = SweepConfig(
            tuple(shards), tuple(routing), tuple(indexes), tuple(hot_fraction),
            backend=backend, cold_index=cold_index, seed=seed, runs=runs,
        )
        records = list(
            run_sweep(data, workload, config, progress=_RichProgress(progress, config.size))
        )

    inputs = CostInputs(
        queries_per_month=queries_per_month, target_qps=target_qps,
        machine_cores=report.environment()["cores"], price_model=price_model,
        cold_storage_class=cold_storage_class,
    )
    rows = [
        price_row(measured, replicas=r, node_memory_gib=m, inputs=inputs, catalog=catalog)
        for measured in (measure(record) for record in records)
        for r in replicas
        for m in node_memory
    ]
    front = pareto_front(rows)
    best = cheapest_meeting(rows, target_recall=target_recall, target_p99_ms=target_p99_ms)
    summary = _summary(
        data_name=data.name, n_base=len(data.base), dim=data.dim, metric=data.metric.value,
        config=config, workload_params=records[0].params, rows=rows, best=best, front=front,
        inputs=inputs, prices_dated=catalog.date_read, targets={
            "recall": target_recall, "p99_ms": target_p99_ms, "qps": target_qps,
        }, wall_s=time.perf_counter() - started,
    )

    if out_dir is not None:
        _write_outputs(out_dir, records, rows, best, front, summary)
    title = f"tiering size: {data.name}, k={k}, prices {catalog.date_read}, {price_model}"
    if as_json:
        report.render_table(rows, errors, title=title)
        click.echo(json.dumps([row.as_dict() for row in rows], indent=2))
    else:
        terminal = Console()
        report.render_table(rows, terminal if terminal.is_terminal else Console(width=160),
                            title=title)
        if best is not None:
            click.echo(
                f"Cheapest meeting the targets: {report.count_label(best.shards, 'shard')}, "
                f"{best.routing}, {report.count_label(best.replicas, 'replica')}, "
                f"hot {best.hot_fraction:g}: "
                f"${best.cost_usd_per_month:,.2f}/month."
            )


def _check_catalog(catalog: Catalog, cold_storage_class: str) -> None:
    # Price a tiny collection under every model first, so that a catalog without an
    # entry fails before the sweep spends minutes measuring.
    for model in PRICE_MODELS:
        estimate_tiering_cost(
            total_vectors=1000, hot_vectors=500, dim=8, queries_per_month=1.0,
            cold_index_bytes=1, price_model=model, cold_storage_class=cold_storage_class,
            cold_reads_per_month=1.0, catalog=catalog,
        )
    zilliz_dedicated_usd_per_month(cus=1, catalog=catalog)


def _summary(
    *,
    data_name: str,
    n_base: int,
    dim: int,
    metric: str,
    config: SweepConfig,
    workload_params: dict[str, Any],
    rows: list[SizingRow],
    best: SizingRow | None,
    front: list[int],
    inputs: CostInputs,
    prices_dated: str,
    targets: dict[str, Any],
    wall_s: float,
) -> dict[str, Any]:
    return {
        "data": {"name": data_name, "n_base": n_base, "dim": dim, "metric": metric},
        "workload": {
            key: workload_params[key] for key in ("k", "zipf", "concurrency", "query_count")
        },
        "sweep": {
            "shards": list(config.shard_counts),
            "routing": [r.label for r in config.routings],
            "index": [i.label for i in config.indexes],
            "hot_fraction": list(config.hot_fractions),
            "backend": config.backend,
            "cold_index": config.cold_index.label,
            "seed": config.seed,
            "runs": config.runs,
        },
        "price_model": inputs.price_model,
        "cold_storage_class": inputs.cold_storage_class,
        "queries_per_month": inputs.queries_per_month,
        "prices_dated": prices_dated,
        "targets": targets,
        "environment": report.environment(),
        "wall_s": wall_s,
        "best": best.as_dict() if best is not None else None,
        "pareto_front": front,
        "rows": [row.as_dict() for row in rows],
    }


def _write_outputs(
    out_dir: Path,
    records: list[RunRecord],
    rows: list[SizingRow],
    best: SizingRow | None,
    front: list[int],
    summary: dict[str, Any],
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_records(records, out_dir / "records.jsonl.gz")
    report.write_csv(rows, out_dir / "summary.csv")
    report.write_json(summary, out_dir / "summary.json")
    plot_paths = plots.write_plots(rows, front, out_dir)
    report.write_markdown(summary, rows, best, front, plot_paths, out_dir / "report.md")
