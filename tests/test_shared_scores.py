"""Shared access scores and the tiering lease, against a real redis-server on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from tiering_fixtures import StepClock, fast_config, make_backend, random_vectors

from tiering.access import AccessTracker
from tiering.errors import ConfigurationError
from tiering.records import Metric
from tiering.service.lease import LeaderLease
from tiering.shared_scores import (
    EPOCH_HALF_LIVES,
    RedisSettings,
    SharedAccessTracker,
    SharedScoresError,
    connect,
)
from tiering.store import TieredStore

HALF_LIFE_S = 60.0


def replica(
    url: str, prefix: str, half_life_s: float = HALF_LIFE_S, **settings: object
) -> SharedAccessTracker:
    config = RedisSettings(url=url, prefix=prefix, **settings)  # type: ignore[arg-type]
    return SharedAccessTracker.adopt(AccessTracker(half_life_s), connect(config), config)


@pytest.fixture
def pair(redis_server, redis_prefix):
    return replica(redis_server.url, redis_prefix), replica(redis_server.url, redis_prefix)


def scores_of(tracker: AccessTracker, ids: list, now_s: float) -> list[float]:
    return [float(score) for score in tracker.snapshot(ids, now_s)[0]]


def test_replicas_see_each_others_hits(pair):
    first, second = pair
    first.register([1, 2, "doc"], 1000.0)
    second.register([1, 2, "doc"], 1000.0)
    first.record([1, 1, 1, "doc"], 1000.0)
    second.record([1, 1, 2], 1000.0)

    first.flush()
    second.flush()
    first.pull(1000.0)
    second.pull(1000.0)

    assert scores_of(first, [1, 2, "doc"], 1000.0) == pytest.approx([5.0, 1.0, 1.0])
    assert scores_of(second, [1, 2, "doc"], 1000.0) == pytest.approx([5.0, 1.0, 1.0])


def test_merged_decay_matches_local_tracker(pair):
    first, second = pair
    reference = AccessTracker(HALF_LIFE_S)
    events = [(first, [1, 2], 1000.0), (second, [1], 1030.0), (first, [2, 2], 1090.0), (second, [3], 1200.0)]
    for tracker, ids, now_s in events:
        tracker.record(ids, now_s)
        reference.record(ids, now_s)

    first.flush()
    second.flush()
    first.pull(1300.0)

    expected = scores_of(reference, [1, 2, 3], 1300.0)
    assert scores_of(first, [1, 2, 3], 1300.0) == pytest.approx(expected, rel=1e-9)


def test_scores_cross_epoch_boundary(redis_server, redis_prefix):
    half_life_s = 1.0
    epoch_s = EPOCH_HALF_LIVES * half_life_s
    writer = replica(redis_server.url, redis_prefix, half_life_s)
    reader = replica(redis_server.url, redis_prefix, half_life_s)
    writer.record(["late"], 10 * epoch_s - 1.0)
    writer.record(["early"], 9 * epoch_s + 1.0)
    writer.flush()

    reader.pull(10 * epoch_s + 1.0)

    late, early = scores_of(reader, ["late", "early"], 10 * epoch_s + 1.0)
    assert late == pytest.approx(2.0**-2, rel=1e-9)
    assert early == pytest.approx(2.0 ** -(epoch_s), abs=1e-300)
    assert early < 1e-70


def test_pull_discovers_ids_of_other_replica(pair):
    first, second = pair
    second.register([99, "other"], 1000.0)
    second.flush()

    result = first.pull(1000.0)

    assert result.discovered == 2
    assert set(first.ids()) == {99, "other"}


def test_delete_reaches_other_replica(pair):
    first, second = pair
    for tracker in pair:
        tracker.register([4, 5], 1000.0)
        tracker.flush()
    second.forget([5])
    second.flush()

    result = first.pull(1001.0)

    assert result.forgotten == 1
    assert 5 not in first
    assert 4 in first


def test_stale_hits_do_not_revive_deleted_id(pair):
    first, second = pair
    for tracker in pair:
        tracker.register([7], 1000.0)
        tracker.flush()
    first.record([7], 1001.0)
    second.forget([7])
    second.flush()
    first.flush()

    second.pull(1002.0)

    assert 7 not in second


def test_pending_hits_survive_pull(pair):
    first, second = pair
    second.record([1], 1000.0)
    second.flush()
    first.record([1, 1], 1000.0)

    first.pull(1000.0)

    assert scores_of(first, [1], 1000.0) == pytest.approx([3.0])
    assert first.pending_ids() == 1


def test_leader_restores_scores_after_redis_reset(redis_server, redis_prefix):
    leader = replica(redis_server.url, redis_prefix)
    leader.record([1, 1, 2], 1000.0)
    leader.flush()
    client = redis.Redis.from_url(redis_server.url)
    client.delete(*client.keys(f"{redis_prefix}:*"))

    result = leader.pull(1000.0, restore=True)
    follower = replica(redis_server.url, redis_prefix)
    follower.pull(1000.0)

    assert result.restored == 2
    assert scores_of(leader, [1, 2], 1000.0) == pytest.approx([2.0, 1.0])
    assert scores_of(follower, [1, 2], 1000.0) == pytest.approx([2.0, 1.0])


def test_half_life_mismatch_rejected(redis_server, redis_prefix):
    first = replica(redis_server.url, redis_prefix, half_life_s=60.0)
    first.record([1], 1000.0)
    first.flush()
    second = replica(redis_server.url, redis_prefix, half_life_s=120.0)
    second.record([1], 1000.0)

    with pytest.raises(ConfigurationError, match=r"half-life 60\.0 s.*120\.0 s"):
        second.flush()


def test_redis_refused_keeps_hits_buffered(redis_server, redis_prefix):
    from backends import closed_port

    down = replica(f"redis://127.0.0.1:{closed_port()}/0", redis_prefix, retries=1)
    down.record([1, 2], 1000.0)

    started = time.monotonic()
    with pytest.raises(SharedScoresError, match="hits stay buffered"):
        down.flush()
    elapsed_s = time.monotonic() - started

    assert elapsed_s < 3.0
    assert down.pending_ids() == 2


def test_silent_redis_times_out(silent_port, redis_prefix):
    url = f"redis://127.0.0.1:{silent_port}/0"
    silent = replica(url, redis_prefix, socket_timeout_s=0.2, connect_timeout_s=0.2, retries=1)
    silent.record([1], 1000.0)

    started = time.monotonic()
    with pytest.raises(SharedScoresError):
        silent.flush()
    with pytest.raises(SharedScoresError, match="local scores"):
        silent.pull(1000.0)
    elapsed_s = time.monotonic() - started

    assert elapsed_s < 5.0
    assert silent.pending_ids() == 1


def test_pending_buffer_is_bounded(redis_prefix):
    from backends import closed_port

    down = replica(f"redis://127.0.0.1:{closed_port()}/0", redis_prefix, retries=0, max_pending_ids=10)
    down.record(list(range(25)), 1000.0)

    assert down.pending_ids() <= 10
    assert down.dropped_hits > 0


def test_invalid_redis_settings_named():
    with pytest.raises(ConfigurationError, match="redis://"):
        RedisSettings(url="http://127.0.0.1:6379")
    with pytest.raises(ConfigurationError, match="-1"):
        RedisSettings(url="redis://127.0.0.1:6379", socket_timeout_s=-1)


def test_store_hits_reach_other_replica(redis_server, redis_prefix, tmp_path):
    settings = RedisSettings(url=redis_server.url, prefix=redis_prefix)
    backend = make_backend("memory", 8, Metric.L2)
    clock = StepClock()
    store = TieredStore(backend, tmp_path / "cold", config=fast_config(), clock=clock)
    store.tracker = SharedAccessTracker.adopt(store.tracker, connect(settings), settings)
    vectors = random_vectors(20, 8)
    store.upsert(list(range(20)), vectors)
    store.search(vectors[3], k=1)
    store.get([3])
    assert isinstance(store.tracker, SharedAccessTracker)
    store.tracker.flush()

    other = replica(redis_server.url, redis_prefix)
    other.pull(clock())

    assert set(other.ids()) == set(range(20))
    assert scores_of(other, [3], clock())[0] == pytest.approx(2.0)
    store.close()


def test_lease_one_holder_at_a_time(redis_server, redis_prefix):
    client = connect(RedisSettings(url=redis_server.url))
    first = LeaderLease(client, f"{redis_prefix}:lease", "replica-a", ttl_s=5.0)
    second = LeaderLease(client, f"{redis_prefix}:lease", "replica-b", ttl_s=5.0)

    assert first.acquire()
    assert not second.acquire()
    assert first.acquire()
    assert second.holder() == "replica-a"
    assert not second.renew()

    first.release()

    assert second.acquire()
    assert not first.acquire()
    assert first.holder() == "replica-b"


def test_lease_expires_without_renewal(redis_server, redis_prefix):
    client = connect(RedisSettings(url=redis_server.url))
    first = LeaderLease(client, f"{redis_prefix}:lease", "replica-a", ttl_s=0.2)
    second = LeaderLease(client, f"{redis_prefix}:lease", "replica-b", ttl_s=0.2)
    assert first.acquire()
    assert not second.acquire()

    time.sleep(0.35)

    assert second.acquire()
    assert not first.renew()


def test_lease_release_keeps_other_holder(redis_server, redis_prefix):
    client = connect(RedisSettings(url=redis_server.url))
    first = LeaderLease(client, f"{redis_prefix}:lease", "replica-a", ttl_s=5.0)
    second = LeaderLease(client, f"{redis_prefix}:lease", "replica-b", ttl_s=5.0)
    assert first.acquire()

    second.release()

    assert first.holder() == "replica-a"


def test_lease_redis_down_raises(redis_prefix):
    from backends import closed_port

    client = connect(RedisSettings(url=f"redis://127.0.0.1:{closed_port()}/0", retries=0))
    lease = LeaderLease(client, f"{redis_prefix}:lease", "replica-a", ttl_s=5.0)

    with pytest.raises(SharedScoresError, match="never tier at once"):
        lease.acquire()
    assert not lease.held


def test_moves_reach_other_replica(pair):
    first, second = pair
    first.register([1, 2], 1000.0)
    first.mark_moved([1], 1010.0)
    first.flush()

    second.pull(1020.0)

    _scores, _idle_s, since_move_s = second.snapshot([1, 2], 1020.0)
    assert since_move_s[0] == pytest.approx(10.0)
    assert since_move_s[1] == float("inf")


def test_delete_then_register_in_one_flush(pair):
    first, second = pair
    first.register([3], 1000.0)
    first.flush()
    first.forget([3])
    first.register([3], 1001.0)
    first.flush()

    second.pull(1002.0)

    assert 3 in second


def test_concurrent_hits_and_flushes_add_up(pair):
    first, second = pair
    ids = list(range(10))
    stop = threading.Event()

    def hit_many() -> None:
        for _ in range(200):
            first.record(ids, 1000.0)

    def flush_often() -> None:
        while not stop.is_set():
            first.flush()

    flusher = threading.Thread(target=flush_often)
    flusher.start()
    workers = [threading.Thread(target=hit_many) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    stop.set()
    flusher.join(30)
    first.flush()

    second.pull(1000.0)

    assert scores_of(second, ids, 1000.0) == pytest.approx([800.0] * 10)
