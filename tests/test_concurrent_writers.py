"""Two processes tier into one cold tier at the same time without losing a vector.

Two qdrant-client local folders cannot be shared between processes, and the core has
no lock for a shared backend, so each child owns its own hot tier (its own qdrant
folder) and a disjoint range of ids, while both write segments, manifests and journal
entries under the same S3 prefix of one moto bucket. That is the production case of
two services that each tier their own collection into one cold-tier prefix, and the
manifest is the only thing they contend on: each commit creates
``manifests/v<N>.json`` with If-None-Match, and the loser rebases and retries.

Each child runs several passes of writes and tiering (tests/crash_worker.py). The
parent then checks that every manifest version was created by exactly one child, that
versions form one unbroken chain, that both children finished (so the losers' retries
ended), and that each child's acknowledged vectors are all present once, with their
latest version, in exactly one tier.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from crash_worker import COLLECTION, DIM, replay, tiering_config, vector_for
from qdrant_client import QdrantClient
from servers import S3Endpoint, moto_control, moto_server  # noqa: F401  (fixtures)

from tiering.adapters.qdrant import QdrantBackend
from tiering.manifest import ManifestLog
from tiering.records import Metric
from tiering.s3store import S3ObjectStore
from tiering.store import TieredStore

WORKER = Path(__file__).with_name("crash_worker.py")
ID_BASES = (0, 1_000_000)
PASSES = 4
TIMEOUT_S = 240


def start_child(
    endpoint: S3Endpoint, bucket: str, folder: Path, id_base: int, reopen: bool
) -> subprocess.Popen[str]:
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        str(WORKER),
        "--endpoint",
        endpoint.endpoint_url,
        "--bucket",
        bucket,
        "--qdrant-path",
        str(folder / "qdrant"),
        "--log",
        str(folder / "acks.jsonl"),
        "--commits-log",
        str(folder / "commits.jsonl"),
        "--seed",
        str(id_base + 7),
        "--id-base",
        str(id_base),
        "--passes",
        str(PASSES),
        "--writer-id",
        f"writer-{id_base}",
    ]
    if reopen:
        command.append("--reopen")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def committed_keys(folder: Path) -> list[str]:
    path = folder / "commits.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["key"] for line in path.read_text().splitlines()]


def check_child(endpoint: S3Endpoint, bucket: str, folder: Path, id_base: int) -> None:
    live, deleted = replay(folder / "acks.jsonl")
    assert live, "the child acknowledged no writes"
    assert all(id_base <= record_id < id_base + 1_000_000 for record_id in live)
    backend = QdrantBackend(QdrantClient(path=str(folder / "qdrant")), COLLECTION, DIM, "l2")
    store = TieredStore(backend, S3ObjectStore(endpoint.config(bucket)), config=tiering_config())
    try:
        records = store.get(sorted(set(live) | deleted))
        found = {record.id for record in records}
        assert not set(live) - found, f"acknowledged ids lost: {sorted(set(live) - found)}"
        assert not found & deleted, f"deleted ids came back: {sorted(found & deleted)}"
        assert len(records) == len(found)
        for record in records:
            version, seed = live[record.id]
            assert record.version == version
            assert np.allclose(record.vector, vector_for(seed), atol=1e-6)
        hot_ids = {i for batch in store.backend.iter_ids() for i in batch}
        mine_cold = {i for i in store.cold.ids() if id_base <= i < id_base + 1_000_000}
        assert not hot_ids & mine_cold, "an id is in both tiers"
        assert hot_ids | mine_cold == set(live)
        assert not mine_cold & deleted
    finally:
        store.close()


def cold_rows_per_id(endpoint: S3Endpoint, bucket: str) -> dict[int, int]:
    """Count the live rows of each id in the latest manifest, reading every segment."""
    store = S3ObjectStore(endpoint.config(bucket), writable=False)
    from tiering.coldtier import ColdTier

    cold = ColdTier(store, DIM, Metric.L2)
    counts: dict[int, int] = {}
    for row in cold._rows.values():
        counts[row.id] = counts.get(row.id, 0) + 1  # type: ignore[index]
    return counts


# Each child has its own writer id, so a child that reopens its store leaves the other
# child's journal entries alone until their lease runs out instead of settling them.


@pytest.mark.slow
@pytest.mark.parametrize("reopen", [False, True], ids=["long-lived", "reopening"])
def test_two_writers_one_prefix(moto_server: S3Endpoint, tmp_path: Path, reopen: bool) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    folders = [tmp_path / f"writer{n}" for n in range(2)]

    children = [
        start_child(moto_server, bucket, folder, base, reopen)
        for folder, base in zip(folders, ID_BASES, strict=True)
    ]
    outputs = [child.communicate(timeout=TIMEOUT_S) for child in children]

    for child, (_stdout, stderr) in zip(children, outputs, strict=True):
        assert child.returncode == 0, f"writer failed:\n{stderr[-4000:]}"
    mine = [committed_keys(folder) for folder in folders]
    assert mine[0] and mine[1], "one writer committed nothing: no contention was tested"
    assert not set(mine[0]) & set(mine[1]), "two writers both created one manifest version"
    log = ManifestLog(S3ObjectStore(moto_server.config(bucket), writable=False), DIM, Metric.L2)
    versions = log.versions()
    assert versions == list(range(1, len(versions) + 1))
    assert sorted(mine[0] + mine[1]) == [f"manifests/v{v:020d}.json" for v in versions]
    for version in versions[1:]:
        assert log.load(version).parent_version == version - 1
    retries = sum(stderr.count("committed by another writer") for _stdout, stderr in outputs)
    print(f"{len(versions)} manifest versions, {retries} lost races retried")

    for folder, base in zip(folders, ID_BASES, strict=True):
        check_child(moto_server, bucket, folder, base)
    duplicated = {i: n for i, n in cold_rows_per_id(moto_server, bucket).items() if n > 1}
    assert not duplicated, f"ids with several live cold rows: {duplicated}"


@pytest.mark.parametrize("same_writer", [True, False], ids=["same-writer-id", "other-writer-id"])
def test_open_during_demotion_keeps_segment(tmp_path: Path, same_writer: bool) -> None:
    """A deterministic, in-process form of the race: B opens while A is mid-demotion.

    With another writer id, B leaves A's journal entry alone (its lease is running).
    With the same id, B settles it at once, which must still lose nothing: recovery
    never deletes a segment that a live writer may be about to commit.
    """
    from tiering_fixtures import fast_config, random_vectors

    from tiering.adapters.memory import InMemoryBackend
    from tiering.objectstore import LocalFolderStore

    cold_store = LocalFolderStore(tmp_path / "cold")
    vectors = random_vectors(20, DIM)
    opened: list[TieredStore] = []
    pending_seen_by_second: list[int] = []
    second_config = fast_config(writer_id="writer-a" if same_writer else "writer-b")

    def open_second_writer(step: str) -> None:
        if step == "segment_uploaded" and not opened:
            second = TieredStore(InMemoryBackend(DIM, "l2"), cold_store, config=second_config)
            opened.append(second)
            pending_seen_by_second.append(len(second.mover.pending()))

    first = TieredStore(
        InMemoryBackend(DIM, "l2"),
        cold_store,
        config=fast_config(writer_id="writer-a"),
        fault_hook=open_second_writer,
    )
    first.upsert(list(range(20)), vectors)
    first.tier()

    reopened = TieredStore(first.backend, cold_store, config=fast_config(), close_backend=False)
    assert [record.id for record in reopened.get(list(range(20)))] == list(range(20))
    assert pending_seen_by_second == [0 if same_writer else 1]
    assert reopened.mover.pending() == []
