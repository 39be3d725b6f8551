"""SIGKILL at every step of a demotion or promotion, against S3 on moto, loses nothing.

Each run starts tests/crash_worker.py as a child process. The child writes, deletes
and reads (so that some cold ids earn a promotion), then runs a tiering pass and is
killed with SIGKILL at one step of one move, chosen by the run's seed; a few runs are
instead killed by the parent at a random moment of the pass. The hot tier is
qdrant-client's local mode on a folder that outlives the child (one process per
folder, so the parent opens it only after the child is dead) and the cold tier is a
moto bucket. After each kill the parent reopens the store, which settles the
interrupted move, and checks:

* every acknowledged id is present exactly once, with its latest version, payload
  and vector, and in exactly one tier;
* deleted ids stay deleted, in reads and in searches;
* no segment that the latest manifest lists is missing, and no journal entry is left.

Runs are chained: ten chains of ten runs, each run continuing from the state the
previous kill left behind. Each worker is forked from one long-lived
``crash_worker.py --serve`` process per chain, which saves about two seconds of
imports per run; the SIGKILL hits the forked worker only.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from crash_worker import COLLECTION, DIM, replay, tiering_config, vector_for
from qdrant_client import QdrantClient
from servers import S3Endpoint, moto_control, moto_server  # noqa: F401  (fixtures)

from tiering.adapters.qdrant import QdrantBackend
from tiering.mover import DEMOTE_STEPS, PROMOTE_STEPS
from tiering.s3store import S3ObjectStore
from tiering.store import TieredStore

WORKER = Path(__file__).with_name("crash_worker.py")
CHAINS = 10
RUNS_PER_CHAIN = 10
KILL_POINTS = [("demote", step) for step in DEMOTE_STEPS] + [("promote", step) for step in PROMOTE_STEPS]
CHILD_TIMEOUT_S = 120


class WorkerServer:
    """tests/crash_worker.py in --serve mode: forks one worker per run."""

    def __init__(self, folder: Path):
        self.stderr_path = folder / "worker-stderr.log"
        self._stderr = self.stderr_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def run(self, arguments: list[str], timed_kill_s: float | None) -> int:
        """Run one worker to completion or death; return its exit code (-9 when killed)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        watchdog = threading.Timer(CHILD_TIMEOUT_S, self.process.kill)
        watchdog.start()
        try:
            self.process.stdin.write(json.dumps(arguments) + "\n")
            self.process.stdin.flush()
            pid = 0
            for line in self.process.stdout:
                if line.startswith("STARTED"):
                    pid = int(line.split()[1])
                elif line.startswith("TIER_START") and timed_kill_s is not None:
                    time.sleep(timed_kill_s)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                elif line.startswith("EXIT"):
                    return int(line.split()[1])
            raise AssertionError("the worker server died:\n" + self.stderr_tail())
        finally:
            watchdog.cancel()

    def stderr_tail(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-3000:]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


def worker_arguments(
    endpoint: S3Endpoint, bucket: str, folder: Path, seed: int, kill: str | None
) -> list[str]:
    arguments = [
        "--endpoint", endpoint.endpoint_url,
        "--bucket", bucket,
        "--qdrant-path", str(folder / "qdrant"),
        "--log", str(folder / "acks.jsonl"),
        "--seed", str(seed),
    ]
    return [*arguments, "--kill", kill] if kill else arguments


def open_parent_store(endpoint: S3Endpoint, bucket: str, folder: Path) -> TieredStore:
    backend = QdrantBackend(QdrantClient(path=str(folder / "qdrant")), COLLECTION, DIM, "l2")
    return TieredStore(backend, S3ObjectStore(endpoint.config(bucket)), config=tiering_config())


def check_store(store: TieredStore, log_path: Path) -> None:
    """Assert the invariants against the writes the child acknowledged."""
    live, deleted = replay(log_path)
    everything = sorted(set(live) | deleted)

    assert store.mover.pending() == [], "a journal entry survived reopening"
    records = store.get(everything)
    assert [record.id for record in records] == sorted(live)
    for record in records:
        version, seed = live[record.id]
        assert record.version == version, f"id {record.id} has version {record.version}, expected {version}"
        assert record.payload == {"seed": seed}
        assert np.allclose(record.vector, vector_for(seed), atol=1e-6)

    hot_ids = [i for batch in store.backend.iter_ids() for i in batch]
    cold_ids = store.cold.ids()
    assert len(hot_ids) == len(set(hot_ids))
    assert not set(hot_ids) & set(cold_ids), "an id is in both tiers"
    assert set(hot_ids) | set(cold_ids) == set(live)

    for seed in range(3):
        query = vector_for(10_000 + seed)
        hit_ids = [hit.id for hit in store.search(query, k=max(1, len(live)), track=False)]
        assert len(hit_ids) == len(set(hit_ids)), "a search returned an id twice"
        assert not set(hit_ids) & deleted, "a deleted id came back"
        assert len(hit_ids) == len(live)

    for entry in store.cold.manifest.segments:
        store.object_store.head(entry.key)


def kill_plan(chain: int, run: int) -> tuple[str | None, float | None]:
    rng = random.Random(chain * 1000 + run)
    if run % 5 == 4:
        return None, rng.uniform(0.0, 0.4)
    operation, step = KILL_POINTS[(chain * RUNS_PER_CHAIN + run) % len(KILL_POINTS)]
    return f"{operation}:{step}:{rng.randint(1, 2)}", None


@pytest.mark.slow
@pytest.mark.parametrize("chain", range(CHAINS))
def test_sigkill_during_moves(chain: int, moto_server: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    server = WorkerServer(tmp_path)
    killed = 0
    try:
        for run in range(RUNS_PER_CHAIN):
            kill, timed_kill_s = kill_plan(chain, run)
            arguments = worker_arguments(moto_server, bucket, tmp_path, chain * 1000 + run, kill)

            code = server.run(arguments, timed_kill_s)
            assert code in (0, -signal.SIGKILL), f"worker failed:\n{server.stderr_tail()}"
            killed += code == -signal.SIGKILL

            store = open_parent_store(moto_server, bucket, tmp_path)
            try:
                check_store(store, tmp_path / "acks.jsonl")
            finally:
                store.close()
    finally:
        server.close()

    # Most planned kill points are reached; promotions need earlier reads to happen.
    assert killed >= RUNS_PER_CHAIN // 2


def test_kill_points_cover_every_step() -> None:
    runs = itertools.product(range(CHAINS), range(RUNS_PER_CHAIN))
    planned = {kill_plan(chain, run)[0] for chain, run in runs}
    planned_points = {tuple(spec.split(":")[:2]) for spec in planned if spec}

    assert planned_points == set(KILL_POINTS)
