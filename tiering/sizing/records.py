"""Raw results of a sizing run: one record per configuration, saved as JSON lines.

A record keeps the parameters, the build measurements, and per query the returned
ids and scores, the exact ids, the serial latency and the work done, plus the wall
time of the concurrent pass. Metrics are computed from records afterwards
(:mod:`tiering.sizing.summary`), so a saved run can be re-summarised or re-priced.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from tiering.errors import CorruptDataError

FORMAT_VERSION = 1


@dataclass
class RunRecord:
    """Raw measurements of one configuration.

    ``params`` names the configuration (shards, routing, index, hot fraction, data,
    workload); ``build`` contains per-shard sizes and index bytes and build times;
    ``queries`` contains one entry per query of the stream with ``ids``, ``scores``,
    ``truth`` (exact top-k), ``latency_s``, ``shards_searched``, ``distance_count``
    (hot and cold tier), ``hot_distance_count`` and ``cold_hits``; ``throughput``
    contains ``concurrency``, ``queries`` and ``wall_s``.
    """

    params: dict[str, Any]
    build: dict[str, Any]
    queries: list[dict[str, Any]] = field(default_factory=list)
    throughput: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """Return the record as one line of JSON."""
        return json.dumps(
            {
                "format_version": FORMAT_VERSION,
                "params": self.params,
                "build": self.build,
                "queries": self.queries,
                "throughput": self.throughput,
            },
            separators=(",", ":"),
        )


def write_records(records: Iterable[RunRecord], path: Path) -> None:
    """Write records as JSON lines to ``path``, replacing the file; ``.gz`` compresses."""
    temporary = path.with_suffix(path.suffix + ".tmp")
    with _open(temporary, "wt", gzipped=path.suffix == ".gz") as handle:
        for record in records:
            handle.write(record.to_json() + "\n")
    temporary.replace(path)


def read_records(path: Path) -> Iterator[RunRecord]:
    """Yield the records of a JSON lines file written by :func:`write_records`.

    Raises:
        CorruptDataError: a line is not JSON or lacks a field.
    """
    with _open(path, "rt", gzipped=path.suffix == ".gz") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                document = json.loads(line)
                yield RunRecord(
                    document["params"], document["build"], document["queries"],
                    document["throughput"],
                )
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CorruptDataError(
                    f"{path} line {number} is not a sizing record: {exc}."
                ) from exc


def _open(path: Path, mode: str, *, gzipped: bool) -> IO[str]:
    if gzipped:
        return cast(IO[str], gzip.open(path, mode, encoding="utf-8"))
    return path.open(mode[0], encoding="utf-8")
