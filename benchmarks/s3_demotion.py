"""Demotion throughput to an S3 server, against uploading the same Parquet bytes directly.

A demotion does much more than one upload: it writes and deletes a journal entry,
reads the vectors from the backend, encodes a Parquet segment, uploads it, commits a
manifest version (a LIST and a conditional PUT), adds the rows to the FAISS index,
saves the index, and deletes the vectors from the backend. This benchmark demotes
``--vectors`` vectors of SIFT small (128-d, bundled) in segments of ``--segment-rows``
and compares the wall time with a plain boto3 ``put_object`` of the same segment bytes
to the same server. The ratio is the cost of the bookkeeping that makes a move
crash-safe.

By default the server is moto's ThreadedMotoServer on 127.0.0.1, started here;
``--endpoint-url`` and ``--bucket`` point it at another S3-compatible service (the
bucket must exist; credentials come from boto3's chain).

Usage: python3 benchmarks/s3_demotion.py [--repeats 3] [--output benchmarks/results/s3_demotion.json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import numpy as np
from botocore.config import Config
from machine import machine_info

from tiering.adapters.memory import InMemoryBackend
from tiering.datasets import load_bundled
from tiering.records import Metric, Record
from tiering.s3store import S3Config, S3ObjectStore
from tiering.segment import write_segment
from tiering.store import TieredStore


def start_moto() -> tuple[Any, str]:
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server, f"http://127.0.0.1:{port}"


def raw_client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class StepTimer:
    """A mover fault hook that adds up the wall time spent before each named step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def reset(self) -> None:
        self._last = time.perf_counter()

    def __call__(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = self.seconds.get(step, 0.0) + now - self._last
        self._last = now


def demote_once(config: S3Config, vectors: np.ndarray, segment_rows: int) -> dict[str, Any]:
    backend = InMemoryBackend(vectors.shape[1], Metric.L2, capacity=len(vectors))
    timer = StepTimer()
    store = TieredStore(backend, S3ObjectStore(config), fault_hook=timer)
    ids = list(range(len(vectors)))
    store.upsert(ids, vectors)

    started = time.perf_counter()
    for start in range(0, len(ids), segment_rows):
        timer.reset()
        store.mover.demote(ids[start : start + segment_rows])
    demote_s = time.perf_counter() - started

    assert store.count().cold == len(ids)
    assert store.count().hot == 0
    store.close()
    # Each entry is the time spent reaching that step, summed over all demotions.
    return {"demote_s": demote_s, "step_s": timer.seconds}


def upload_once(client: Any, bucket: str, segments: list[bytes]) -> float:
    started = time.perf_counter()
    for data in segments:
        client.put_object(Bucket=bucket, Key=f"raw/{uuid.uuid4().hex}.parquet", Body=data)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000)
    parser.add_argument("--segment-rows", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--endpoint-url", default=None)
    parser.add_argument("--bucket", default=None)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/s3_demotion.json"))
    args = parser.parse_args()

    server = None
    endpoint_url = args.endpoint_url
    if endpoint_url is None:
        server, endpoint_url = start_moto()
    client = raw_client(endpoint_url)
    vectors = load_bundled("siftsmall").base[: args.vectors]
    records = [Record(n, vectors[n], {}, 1) for n in range(len(vectors))]
    segments = [
        write_segment(records[start : start + args.segment_rows], vectors.shape[1], 0)
        for start in range(0, len(records), args.segment_rows)
    ]
    segment_bytes = sum(len(data) for data in segments)

    runs = []
    try:
        for repeat in range(args.repeats):
            bucket = args.bucket or f"bench-{uuid.uuid4().hex[:12]}"
            if args.bucket is None:
                client.create_bucket(Bucket=bucket)
            prefix = f"run{repeat}-{uuid.uuid4().hex[:6]}"
            config = S3Config(bucket=bucket, prefix=prefix, endpoint_url=endpoint_url)
            demoted = demote_once(config, vectors, args.segment_rows)
            upload_s = upload_once(client, bucket, segments)
            runs.append({**demoted, "upload_s": upload_s, "ratio": demoted["demote_s"] / upload_s})
            print(f"run {repeat}: demote {demoted['demote_s']:.2f} s, raw upload {upload_s:.2f} s, "
                  f"ratio {runs[-1]['ratio']:.1f}", flush=True)
    finally:
        if server is not None:
            server.stop()

    demote_s = statistics.median(run["demote_s"] for run in runs)
    upload_s = statistics.median(run["upload_s"] for run in runs)
    result = {
        "benchmark": "s3_demotion",
        "parameters": {
            "dataset": "siftsmall",
            "vectors": len(vectors),
            "dim": int(vectors.shape[1]),
            "segment_rows": args.segment_rows,
            "segments": len(segments),
            "segment_bytes": segment_bytes,
            "server": "moto ThreadedMotoServer" if server is not None else endpoint_url,
            "repeats": args.repeats,
        },
        "runs": runs,
        "summary": {
            "demote_s_median": demote_s,
            "upload_s_median": upload_s,
            "demote_vectors_per_s": len(vectors) / demote_s,
            "upload_mib_per_s": segment_bytes / upload_s / 2**20,
            "ratio_median": statistics.median(run["ratio"] for run in runs),
        },
        "machine": machine_info(),
        "load_average_1m_at_end": os.getloadavg()[0],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
