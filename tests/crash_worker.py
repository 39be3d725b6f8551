"""Child process for the crash tests: writes, reads, then runs a tiering pass that may die.

Run by tests/test_crash_s3.py and tests/test_concurrent_writers.py with the test
suite's interpreter. The hot tier is qdrant-client's local mode on ``--qdrant-path``
(its files survive the process) and the cold tier is an S3 bucket on a local moto
server. Every write this process finishes is appended to ``--log`` (JSON lines,
fsynced) after the call returns, so the parent can tell which writes were acknowledged.

With ``--kill OPERATION:STEP:N`` the process sends itself SIGKILL right after the
N-th time the mover completes STEP of a demote or promote: no cleanup, no flush, as a
machine failure would. ``--passes`` runs several write-and-tier rounds.

Exit codes: 0 after all passes, -9 (killed) otherwise; anything else is a failure.

``crash_worker.py --serve`` imports everything once and then forks one worker per line
of JSON arguments read from standard input, printing ``STARTED <pid>`` and
``EXIT <code>`` around each; the crash test uses it so that a hundred runs do not each
pay for importing qdrant-client, boto3, pyarrow and FAISS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient

from tiering.adapters.qdrant import QdrantBackend
from tiering.config import TieringConfig
from tiering.policy import HotBudget, PolicyConfig
from tiering.records import Id
from tiering.s3store import S3Config, S3ObjectStore
from tiering.store import TieredStore

DIM = 8
COLLECTION = "crash"
ID_RANGE = 1_000_000


def vector_for(seed: int) -> np.ndarray:
    """Return the vector written with ``seed``; the parent regenerates it to compare."""
    return np.random.default_rng(seed).random(DIM, dtype=np.float32)


def tiering_config(writer_id: str = "crash-worker") -> TieringConfig:
    policy = PolicyConfig(
        budget=HotBudget(max_fraction=0.3), min_idle_s=0.0, cooldown_s=0.0, promote_score=3.0
    )
    return TieringConfig(half_life_s=600.0, policy=policy, segment_rows=16, writer_id=writer_id)


def replay(log_path: Path) -> tuple[dict[Id, tuple[int, int]], set[Id]]:
    """Return the acknowledged state: id -> (version, seed), and the deleted ids."""
    live: dict[Id, tuple[int, int]] = {}
    deleted: set[Id] = set()
    if not log_path.exists():
        return live, deleted
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        if entry["op"] == "upsert":
            for record_id, version, seed in zip(entry["ids"], entry["versions"], entry["seeds"], strict=True):
                live[record_id] = (version, seed)
                deleted.discard(record_id)
        elif entry["op"] == "delete":
            for record_id in entry["ids"]:
                live.pop(record_id, None)
                deleted.add(record_id)
    return live, deleted


def append(log_path: Path, entry: dict[str, Any]) -> None:
    with log_path.open("a") as handle:
        handle.write(json.dumps(entry) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


class KillSwitch:
    """A fault hook that SIGKILLs this process at the N-th occurrence of one move step."""

    def __init__(self, spec: str | None):
        self.operation = self.step = None
        self.remaining = 0
        if spec:
            self.operation, self.step, count = spec.split(":")
            self.remaining = int(count)
        self.current_operation = ""

    def __call__(self, step: str) -> None:
        if self.operation == self.current_operation and step == self.step:
            self.remaining -= 1
            if self.remaining == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    def wrap(self, store: TieredStore) -> None:
        demote, promote = store.mover.demote, store.mover.promote

        def tracked_demote(ids: Any) -> int:
            self.current_operation = "demote"
            return demote(ids)

        def tracked_promote(ids: Any) -> int:
            self.current_operation = "promote"
            return promote(ids)

        store.mover.demote = tracked_demote  # type: ignore[method-assign]
        store.mover.promote = tracked_promote  # type: ignore[method-assign]


def record_commits(store: TieredStore, log_path: Path) -> None:
    """Append every manifest version this process creates to ``log_path``."""
    object_store = store.object_store
    put = object_store.put

    def logged_put(key: str, data: bytes, **kwargs: Any) -> str:
        etag = put(key, data, **kwargs)
        if key.startswith("manifests/"):
            append(log_path, {"key": key, "pid": os.getpid()})
        return etag

    object_store.put = logged_put  # type: ignore[method-assign]


def open_store(args: argparse.Namespace, fault_hook: Any = None) -> TieredStore:
    config = S3Config(
        bucket=args.bucket,
        prefix=args.prefix,
        endpoint_url=args.endpoint,
        access_key_id="testing",
        secret_access_key="testing",
        connect_timeout_s=2.0,
        read_timeout_s=10.0,
        max_attempts=3,
    )
    backend = QdrantBackend(QdrantClient(path=args.qdrant_path), COLLECTION, DIM, "l2")
    return TieredStore(
        backend, S3ObjectStore(config), config=tiering_config(args.writer_id), fault_hook=fault_hook
    )


def run_pass(store: TieredStore, log_path: Path, rng: np.random.Generator, id_base: int) -> None:
    live, _deleted = replay(log_path)
    next_id = max([id_base - 1, *(i for i in live if isinstance(i, int))]) + 1

    new_ids = list(range(next_id, next_id + 20))
    existing = sorted(live)
    overwrite = [int(i) for i in rng.choice(existing, size=min(6, len(existing)), replace=False)]
    remaining = [i for i in existing if i not in overwrite]
    doomed = [int(i) for i in rng.choice(remaining, size=min(3, len(remaining)), replace=False)]

    for ids in (new_ids, overwrite):
        if not ids:
            continue
        seeds = [int(s) for s in rng.integers(0, 2**31, size=len(ids))]
        versions = store.upsert(ids, np.stack([vector_for(s) for s in seeds]), [{"seed": s} for s in seeds])
        append(log_path, {"op": "upsert", "ids": ids, "versions": versions, "seeds": seeds})
    if doomed:
        store.delete(doomed)
        append(log_path, {"op": "delete", "ids": doomed})

    # Read some of this process's cold ids often enough that the policy promotes them. A
    # store treats every cold id under its prefix as its own, so reading another writer's
    # ids would promote them into this process's backend.
    cold = sorted(i for i in store.cold.ids() if isinstance(i, int) and id_base <= i < id_base + ID_RANGE)
    popular = [int(i) for i in rng.choice(cold, size=min(4, len(cold)), replace=False)] if cold else []
    for _ in range(4):
        store.get(popular)

    print("TIER_START", flush=True)
    store.tier()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--qdrant-path", required=True)
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--kill", default=None, help="OPERATION:STEP:N, e.g. demote:manifest_committed:2")
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--id-base", type=int, default=0, help="first id this process creates")
    parser.add_argument("--reopen", action="store_true", help="open the store again for each pass")
    parser.add_argument("--commits-log", type=Path, default=None, help="record committed versions")
    parser.add_argument("--writer-id", default="crash-worker", help="writer id in journal entries")
    args = parser.parse_args(argv)

    kill_switch = KillSwitch(args.kill)
    rng = np.random.default_rng(args.seed)
    store = None
    for _ in range(args.passes):
        if store is None:
            store = open_store(args, kill_switch)
            kill_switch.wrap(store)
            if args.commits_log:
                record_commits(store, args.commits_log)
        run_pass(store, args.log, rng, args.id_base)
        if args.reopen:
            store.close()
            store = None
    if store is not None:
        store.close()
    print("DONE", flush=True)
    return 0


def serve() -> int:
    """Fork one worker per line of JSON arguments on standard input."""
    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = main(argv)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        print(f"STARTED {pid}", flush=True)
        _pid, status = os.waitpid(pid, 0)
        print(f"EXIT {os.waitstatus_to_exitcode(status)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main())
