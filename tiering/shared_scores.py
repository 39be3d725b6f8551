"""Access scores shared by several sidecar replicas through Redis.

Every replica keeps its own :class:`SharedAccessTracker`, an
:class:`~tiering.access.AccessTracker` that also buffers what changed: hits, newly
registered ids, moves and deletions. :meth:`SharedAccessTracker.flush` sends the
buffer to Redis in pipelines; :meth:`SharedAccessTracker.pull` replaces the local
scores with the merged ones of all replicas. Only the holder of the
:class:`tiering.service.lease.LeaderLease` runs tiering passes. It pulls right
before each pass, so its plan includes every replica's hits up to their last flush.
Consistency is eventual: a hit reaches the plan after at most one flush interval
of its replica.

Redis layout under a key prefix ``P``:

* ``P:meta`` (hash): ``half_life_s`` of the prefix, set by the first replica. A
  replica configured with another half-life is rejected.
* ``P:scores:<e>`` (hash, id to weighted score): epoch ``e`` starts at
  ``origin_e = e * EPOCH_HALF_LIVES * half_life_s``. A hit at time ``t`` adds
  ``weight * 2 ** ((t - origin_e) / half_life_s)`` with one HINCRBYFLOAT, the same
  maths as :mod:`tiering.access`. The score at ``now`` is the sum over epochs of
  ``weighted * 2 ** ((origin_e - now) / half_life_s)``. A whole epoch later every
  hit of an epoch has decayed by at least ``2 ** -EPOCH_HALF_LIVES``, so only the
  current and the previous epoch are read, and each epoch hash expires after the
  next one ends. Replicas need no coordination to change epoch, and no factor
  exceeds ``2 ** EPOCH_HALF_LIVES``.
* ``P:last`` (sorted set, id to last access time): registration adds a member
  (ZADD NX), a hit moves its time forward (ZADD XX GT). Its members are the ids
  that the replicas track.
* ``P:moved`` (hash, id to last move time): the cooldown of the policy.
* ``P:deleted`` (sorted set, id to deletion time), kept for
  ``DELETED_RETENTION_S``: a replica forgets an id that another one deleted.
* ``P:lease`` (string): the id of the replica that may run tiering passes
  (see :mod:`tiering.service.lease`).

Every Redis call has a socket and a connect timeout, and the client retries a
failed call a bounded number of times. When Redis fails, hits stay buffered (up to
``max_pending_ids`` ids, then new ones are dropped and counted) and the caller gets
:class:`SharedScoresError`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tiering.access import AccessTracker
from tiering.errors import ConfigurationError, TieringError
from tiering.records import Id, decode_id, encode_id

try:
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "Shared access scores need redis-py. Install it with pip install 'vector-tiering[redis]'."
    ) from exc

logger = logging.getLogger(__name__)

EPOCH_HALF_LIVES = 256
"""Half-lives per score epoch; bounds the factor stored in Redis by 2**256."""

DELETED_RETENTION_S = 7 * 86_400.0
"""How long a deletion stays visible to other replicas, in seconds."""

MIN_EPOCH_TTL_S = 3_600
PIPELINE_COMMANDS = 5_000
SCAN_COUNT = 1_000


class SharedScoresError(TieringError):
    """Redis, which holds the shared access scores and the lease, failed or timed out."""


@dataclass(frozen=True)
class RedisSettings:
    """Connection settings of the Redis server that stores shared scores.

    Attributes:
        url: ``redis://host:port/db`` (or ``rediss://`` for TLS); a password in the URL
            is never logged.
        prefix: key prefix of one collection's scores; replicas of one collection share it.
        socket_timeout_s: maximum wait for one reply.
        connect_timeout_s: maximum wait for a connection.
        retries: extra attempts after a connection error or timeout.
        max_pending_ids: ids whose changes may wait for Redis before new hits are dropped.
    """

    url: str = field(repr=False)
    prefix: str = "tiering"
    socket_timeout_s: float = 1.0
    connect_timeout_s: float = 1.0
    retries: int = 2
    max_pending_ids: int = 1_000_000

    def __post_init__(self) -> None:
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigurationError(
                "Invalid Redis URL: it must start with redis://, rediss:// or unix://."
            )
        if not self.prefix:
            raise ConfigurationError("The Redis key prefix is empty. Set a prefix such as 'tiering:docs'.")
        if self.socket_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ConfigurationError(
                f"Redis timeouts must be positive, got socket {self.socket_timeout_s} s and "
                f"connect {self.connect_timeout_s} s."
            )
        if not 0 <= self.retries <= 10:
            raise ConfigurationError(f"Invalid Redis retries {self.retries}: use 0 to 10.")
        if self.max_pending_ids < 1:
            raise ConfigurationError(f"Invalid max_pending_ids {self.max_pending_ids}: use 1 or more.")


def connect(settings: RedisSettings) -> redis.Redis:
    """Return a Redis client with bounded timeouts and retries; connects lazily."""
    retry = Retry(ExponentialBackoff(cap=0.5, base=0.05), settings.retries)
    return redis.Redis.from_url(
        settings.url,
        socket_timeout=settings.socket_timeout_s,
        socket_connect_timeout=settings.connect_timeout_s,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        decode_responses=True,
        health_check_interval=30,
    )


@dataclass
class _Pending:
    """Changes not yet sent to Redis; times in seconds, ids encoded."""

    hits: dict[str, dict[int, float]] = field(default_factory=dict)
    """Weighted hits per id and epoch, in the frame of that epoch."""
    last_access: dict[str, float] = field(default_factory=dict)
    registered: dict[str, float] = field(default_factory=dict)
    moved: dict[str, float] = field(default_factory=dict)
    forgotten: dict[str, float] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.hits or self.last_access or self.registered or self.moved or self.forgotten)

    def id_count(self) -> int:
        """Return the number of buffered entries; an id counts once per kind of change."""
        return len(self.last_access) + len(self.registered) + len(self.moved) + len(self.forgotten)

    def distinct_ids(self) -> int:
        return len(set(self.last_access) | set(self.registered) | set(self.moved) | set(self.forgotten))


@dataclass
class _RemoteState:
    """The shared state read from Redis; scores as of the pull time, ids encoded."""

    last: dict[str, float] = field(default_factory=dict)
    deleted: dict[str, float] = field(default_factory=dict)
    moved: dict[str, float] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=lambda: defaultdict(float))


@dataclass(frozen=True)
class PullResult:
    """Counts of the changes one pull made to the local tracker."""

    ids: int
    discovered: int
    forgotten: int
    restored: int


class SharedAccessTracker(AccessTracker):
    """An access tracker whose changes are merged with other replicas' through Redis.

    Build it with :meth:`adopt` from the tracker a :class:`~tiering.store.TieredStore`
    loaded, then assign it to ``store.tracker``. Thread-safe; :meth:`flush` and
    :meth:`pull` do network calls outside the tracker's lock except for the final merge.
    """

    def __init__(self, half_life_s: float, capacity: int = 1024):
        super().__init__(half_life_s, capacity)
        # Reentrant, so overrides can hold the lock around the parent's methods.
        self._lock = threading.RLock()  # type: ignore[assignment]
        self._pending = _Pending()
        self._client: redis.Redis | None = None
        self._prefix = ""
        self._max_pending_ids = 1
        self._latest_s = 0.0
        self._layout_checked = False
        # Serialises flushes and pulls, so a pull never misses hits that a concurrent
        # flush has taken out of the buffer but not yet written to Redis.
        self._network_lock = threading.Lock()
        self.dropped_hits = 0
        """Hits dropped because Redis was unreachable and the buffer was full."""

    @classmethod
    def adopt(
        cls, tracker: AccessTracker, client: redis.Redis, settings: RedisSettings
    ) -> SharedAccessTracker:
        """Return a shared tracker with the scores of ``tracker``; every id is queued for registration.

        No Redis call happens here, so a replica starts while Redis is down.
        """
        shared = cls.from_bytes(tracker.to_bytes(), tracker.half_life_s)
        assert isinstance(shared, SharedAccessTracker)
        shared._client = client
        shared._prefix = settings.prefix
        shared._max_pending_ids = settings.max_pending_ids
        with shared._lock:
            for record_id, slot in shared._slots.items():
                last_access_s = float(shared._last_access_s[slot])
                shared._pending.registered[encode_id(record_id)] = last_access_s
                shared._latest_s = max(shared._latest_s, last_access_s)
        return shared

    # Keys and frames -------------------------------------------------------------

    def _key(self, name: str) -> str:
        return f"{self._prefix}:{name}"

    def _epoch_s(self) -> float:
        return EPOCH_HALF_LIVES * self.half_life_s

    def _epoch(self, now_s: float) -> int:
        return math.floor(now_s / self._epoch_s())

    def _to_frame(self, now_s: float, target_s: float) -> float:
        """Return the factor that turns a weight at ``now_s`` into the frame with origin ``target_s``."""
        return float(2.0 ** ((now_s - target_s) / self.half_life_s))

    # Local changes, buffered for Redis --------------------------------------------

    def register(self, ids: Sequence[Id], now_s: float) -> None:
        with self._lock:
            new = [record_id for record_id in ids if record_id not in self._slots]
            super().register(ids, now_s)
            for record_id in new:
                self._queue(self._pending.registered, encode_id(record_id), now_s)
            self._latest_s = max(self._latest_s, now_s)

    def record(self, ids: Sequence[Id], now_s: float, weight: float = 1.0) -> None:
        if not ids:
            return
        epoch = self._epoch(now_s)
        factor = weight * self._to_frame(now_s, epoch * self._epoch_s())
        with self._lock:
            new = [record_id for record_id in ids if record_id not in self._slots]
            super().record(ids, now_s, weight)
            for record_id in new:
                self._queue(self._pending.registered, encode_id(record_id), now_s)
            for record_id in ids:
                key = encode_id(record_id)
                if key not in self._pending.last_access and self._pending.id_count() >= self._max_pending_ids:
                    self.dropped_hits += 1
                    continue
                by_epoch = self._pending.hits.setdefault(key, {})
                by_epoch[epoch] = by_epoch.get(epoch, 0.0) + factor
                self._pending.last_access[key] = now_s
            self._latest_s = max(self._latest_s, now_s)

    def mark_moved(self, ids: Sequence[Id], now_s: float) -> None:
        with self._lock:
            super().mark_moved(ids, now_s)
            for record_id in ids:
                self._queue(self._pending.moved, encode_id(record_id), now_s)

    def forget(self, ids: Iterable[Id]) -> None:
        ids = list(ids)
        with self._lock:
            # The deletion time is the latest time this replica has seen: forget() gets no clock.
            deleted_s = self._latest_s
            super().forget(ids)
            for record_id in ids:
                key = encode_id(record_id)
                self._pending.registered.pop(key, None)
                self._pending.last_access.pop(key, None)
                self._pending.moved.pop(key, None)
                self._pending.hits.pop(key, None)
                self._queue(self._pending.forgotten, key, deleted_s)

    def _queue(self, target: dict[str, float], key: str, now_s: float) -> None:
        if key in target or self._pending.id_count() < self._max_pending_ids:
            target[key] = max(now_s, target.get(key, now_s))
        else:
            self.dropped_hits += 1

    def pending_ids(self) -> int:
        """Return how many ids have changes that Redis has not received yet."""
        with self._lock:
            return self._pending.distinct_ids()

    # Flush -------------------------------------------------------------------------

    def flush(self) -> int:
        """Send the buffered changes to Redis; return how many ids they touched.

        On failure the changes go back into the buffer (bounded by ``max_pending_ids``)
        for the next flush. A flush retried after a timeout may count a hit twice.

        Raises:
            SharedScoresError: Redis is unreachable, timed out or returned an error.
            ConfigurationError: Redis contains scores of this prefix with another half-life.
        """
        client = self._require_client()
        with self._network_lock:
            with self._lock:
                batch, self._pending = self._pending, _Pending()
            if batch.is_empty():
                return 0
            try:
                self._check_layout(client)
                self._send(client, batch)
            except ConfigurationError:
                self._requeue(batch)
                raise
            except redis.RedisError as exc:
                self._requeue(batch)
                raise SharedScoresError(
                    f"Flushing access scores of {batch.distinct_ids()} ids to Redis under prefix "
                    f"{self._prefix!r} failed: {exc}. The hits stay buffered; check that Redis is reachable."
                ) from exc
        return batch.distinct_ids()

    def _send(self, client: redis.Redis, batch: _Pending) -> None:
        epoch_s = self._epoch_s()
        latest_s = max(self._latest_s, *batch.last_access.values(), *batch.registered.values(), 0.0)
        commands = _Pipeline(client)
        # Deletions go first, so an id deleted and registered again in one batch stays registered.
        current_epoch = self._epoch(latest_s)
        for key in batch.forgotten:
            commands.add("zrem", self._key("last"), key)
            commands.add("hdel", self._key("moved"), key)
            commands.add("hdel", self._key(f"scores:{current_epoch}"), key)
            commands.add("hdel", self._key(f"scores:{current_epoch - 1}"), key)
        for chunk in _chunks(batch.forgotten, PIPELINE_COMMANDS):
            commands.add("zadd", self._key("deleted"), chunk)
        if batch.forgotten:
            commands.add("zremrangebyscore", self._key("deleted"), "-inf", latest_s - DELETED_RETENTION_S)
        for chunk in _chunks(batch.registered, PIPELINE_COMMANDS):
            commands.add("zadd", self._key("last"), chunk, nx=True)
        epochs = set()
        for key, by_epoch in batch.hits.items():
            for epoch, weighted in by_epoch.items():
                commands.add("hincrbyfloat", self._key(f"scores:{epoch}"), key, weighted)
                epochs.add(epoch)
        for epoch in epochs:
            # Epoch e is read until epoch e + 1 ends. The TTL is relative because the
            # clock may be simulated.
            ttl_s = max(MIN_EPOCH_TTL_S, math.ceil((epoch + 2) * epoch_s - latest_s))
            commands.add("expire", self._key(f"scores:{epoch}"), ttl_s)
        for chunk in _chunks(batch.last_access, PIPELINE_COMMANDS):
            commands.add("zadd", self._key("last"), chunk, xx=True, gt=True)
        for chunk in _chunks(batch.moved, PIPELINE_COMMANDS):
            commands.add("hset", self._key("moved"), mapping=chunk)
        commands.execute()

    def _requeue(self, batch: _Pending) -> None:
        with self._lock:
            newer, self._pending = self._pending, batch
            for key, by_epoch in newer.hits.items():
                target_hits = self._pending.hits.setdefault(key, {})
                for epoch, weighted in by_epoch.items():
                    target_hits[epoch] = target_hits.get(epoch, 0.0) + weighted
            for source, target in (
                (newer.last_access, self._pending.last_access),
                (newer.registered, self._pending.registered),
                (newer.moved, self._pending.moved),
                (newer.forgotten, self._pending.forgotten),
            ):
                for key, when_s in source.items():
                    target[key] = max(when_s, target.get(key, when_s))
            excess = self._pending.id_count() - self._max_pending_ids
            if excess > 0:
                # Drop the oldest hits first; registrations and deletions matter more.
                dropped = list(self._pending.last_access)[:excess]
                for key in dropped:
                    del self._pending.last_access[key]
                    self._pending.hits.pop(key, None)
                self.dropped_hits += len(dropped)

    def _check_layout(self, client: redis.Redis) -> None:
        if self._layout_checked:
            return
        meta = self._key("meta")
        client.hsetnx(meta, "half_life_s", repr(self.half_life_s))
        stored = client.hget(meta, "half_life_s")
        if stored is not None and float(stored) != self.half_life_s:
            raise ConfigurationError(
                f"Redis prefix {self._prefix!r} contains access scores with half-life {float(stored)} s, but "
                f"this replica is configured with {self.half_life_s} s. Use the same half-life on "
                "every replica, or another prefix."
            )
        self._layout_checked = True

    def _require_client(self) -> redis.Redis:
        if self._client is None:
            raise ConfigurationError("This tracker is not connected to Redis; build it with adopt().")
        return self._client

    # Pull --------------------------------------------------------------------------

    def pull(self, now_s: float, *, restore: bool = False) -> PullResult:
        """Replace the local scores with the merged scores in Redis, as of ``now_s``.

        Ids that other replicas registered are added, ids they deleted are forgotten,
        and changes still buffered here are added on top. An id tracked here but
        unknown to Redis keeps its local values, because Redis lost its data or a write
        was lost. With ``restore`` (the leader, whose scores are the merged ones) those
        values are written back to Redis. Otherwise the id is queued for registration.

        Raises:
            SharedScoresError: Redis is unreachable, timed out or returned an error.
        """
        client = self._require_client()
        with self._network_lock:
            try:
                self._check_layout(client)
                remote = self._read_remote(client, now_s)
            except redis.RedisError as exc:
                raise SharedScoresError(
                    f"Reading shared access scores under Redis prefix {self._prefix!r} failed: {exc}. "
                    "Tiering uses this replica's local scores until Redis is reachable."
                ) from exc
            with self._lock:
                result, unknown = self._merge(now_s, remote)
        restored = 0
        if unknown and restore:
            restored = self._restore(client, unknown, now_s)
        elif unknown:
            with self._lock:
                for key in unknown:
                    self._queue(self._pending.registered, key, now_s)
        if result.discovered or result.forgotten or restored:
            logger.info(
                "Pulled shared access scores of %d ids: %d new from other replicas, %d deleted "
                "elsewhere, %d written back",
                result.ids, result.discovered, result.forgotten, restored,
            )
        return PullResult(result.ids, result.discovered, result.forgotten, restored)

    def _read_remote(self, client: redis.Redis, now_s: float) -> _RemoteState:
        remote = _RemoteState()
        for key, when in client.zscan_iter(self._key("last"), count=SCAN_COUNT):
            remote.last[key] = float(when)
        for key, when in client.zscan_iter(self._key("deleted"), count=SCAN_COUNT):
            remote.deleted[key] = float(when)
        for key, when in client.hscan_iter(self._key("moved"), count=SCAN_COUNT):
            remote.moved[key] = float(when)
        epoch = self._epoch(now_s)
        for scan_epoch in (epoch - 1, epoch):
            factor = self._to_frame(scan_epoch * self._epoch_s(), now_s)
            for key, weighted in client.hscan_iter(self._key(f"scores:{scan_epoch}"), count=SCAN_COUNT):
                remote.scores[key] += float(weighted) * factor
        return remote

    def _merge(self, now_s: float, remote: _RemoteState) -> tuple[PullResult, list[str]]:
        # Rebase the local frame to now_s, so local weights equal scores at now_s.
        if self._origin_s is not None:
            self._weighted *= self._to_frame(self._origin_s, now_s)
        self._origin_s = now_s
        pending_scores: dict[str, float] = defaultdict(float)
        for key, by_epoch in self._pending.hits.items():
            for epoch, weighted in by_epoch.items():
                pending_scores[key] += weighted * self._to_frame(epoch * self._epoch_s(), now_s)

        discovered = forgotten = 0
        deleted = remote.deleted
        live = {key: when for key, when in remote.last.items() if deleted.get(key, -math.inf) < when}
        for key, last_access_s in live.items():
            record_id = decode_id(key)
            if record_id not in self._slots:
                discovered += 1
            slot = int(self._slots_for([record_id], last_access_s)[0])
            self._weighted[slot] = remote.scores.get(key, 0.0) + pending_scores.get(key, 0.0)
            self._last_access_s[slot] = max(self._last_access_s[slot], last_access_s)
            if key in remote.moved:
                self._last_move_s[slot] = max(self._last_move_s[slot], remote.moved[key])

        unknown = []
        for record_id in list(self._slots):
            key = encode_id(record_id)
            if key in live or key in self._pending.registered:
                continue
            if key in deleted:
                AccessTracker.forget(self, [record_id])
                forgotten += 1
            else:
                unknown.append(key)
        return PullResult(len(self._slots), discovered, forgotten, 0), unknown

    def _restore(self, client: redis.Redis, keys: list[str], now_s: float) -> int:
        epoch = self._epoch(now_s)
        to_epoch = self._to_frame(now_s, epoch * self._epoch_s())
        with self._lock:
            rows = []
            for key in keys:
                slot = self._slots.get(decode_id(key))
                if slot is not None:
                    rows.append(
                        (key, float(self._weighted[slot]), float(self._last_access_s[slot]),
                         float(self._last_move_s[slot]))
                    )
        commands = _Pipeline(client)
        for key, score, last_access_s, last_move_s in rows:
            if score > 0:
                commands.add("hincrbyfloat", self._key(f"scores:{epoch}"), key, score * to_epoch)
            commands.add("zadd", self._key("last"), {key: last_access_s}, gt=True)
            if np.isfinite(last_move_s):
                commands.add("hset", self._key("moved"), key, last_move_s)
        try:
            commands.execute()
        except redis.RedisError as exc:
            logger.warning("Writing %d local access scores back to Redis failed: %s", len(rows), exc)
            return 0
        return len(rows)

    def sync(self, now_s: float, *, restore: bool = False) -> PullResult:
        """Flush the buffered changes, then pull the merged scores. Raises SharedScoresError."""
        self.flush()
        return self.pull(now_s, restore=restore)


class _Pipeline:
    """Queues Redis commands and sends them in non-transactional pipelines of bounded size."""

    def __init__(self, client: redis.Redis):
        self._client = client
        self._commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def add(self, name: str, *args: Any, **kwargs: Any) -> None:
        self._commands.append((name, args, kwargs))

    def execute(self) -> None:
        for start in range(0, len(self._commands), PIPELINE_COMMANDS):
            pipe = self._client.pipeline(transaction=False)
            for name, args, kwargs in self._commands[start : start + PIPELINE_COMMANDS]:
                getattr(pipe, name)(*args, **kwargs)
            pipe.execute()


def _chunks(mapping: dict[str, float], size: int) -> Iterator[dict[str, float]]:
    items = list(mapping.items())
    for start in range(0, len(items), size):
        yield dict(items[start : start + size])
