"""The life of one sidecar replica: open the store, run the background tasks, stop cleanly.

The store opens in a background thread with bounded retries, so the HTTP server
responds to ``/healthz`` at once and ``/readyz`` returns 503 until the backend is
reachable and the cold tier is loaded.

With a Redis URL, a :class:`~tiering.shared_scores.SharedAccessTracker` replaces the
store's access tracker. A score-sync task then flushes hits to Redis and renews the
tiering lease. Replicas that do not hold the lease reload the cold tier's manifest at
each sync, so they search the segments the leader wrote.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tiering.errors import TieringError
from tiering.service.lease import LeaderLease
from tiering.service.loop import PeriodicTask, TieringRunner
from tiering.service.metrics import ServiceMetrics
from tiering.service.settings import ServiceSettings
from tiering.service.stores import open_store
from tiering.shared_scores import RedisSettings, SharedAccessTracker, SharedScoresError, connect
from tiering.store import TieredStore

logger = logging.getLogger(__name__)

MAX_OPEN_BACKOFF_S = 30.0
STOP_TIMEOUT_S = 30.0
DEGRADED_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Readiness:
    """Whether this replica can serve requests, and why not."""

    ready: bool
    reason: str


class ServiceUnavailableError(TieringError):
    """The store is not open yet, or opening it failed."""


class DegradedLog:
    """Logs repeated failures of a background step once per interval, and the recovery.

    A failure is logged when the step starts failing and then at most once every
    ``interval_s`` seconds, with the count of failures since the last line.
    """

    def __init__(self, interval_s: float):
        self.interval_s = interval_s
        self._failing: dict[str, tuple[float, int]] = {}

    def failed(self, step: str, exc: Exception) -> None:
        now_s = time.monotonic()
        logged_s, count = self._failing.get(step, (-float("inf"), 0))
        count += 1
        if now_s - logged_s >= self.interval_s:
            logger.warning("Degraded (%s, %d failures since the last report): %s", step, count, exc)
            self._failing[step] = (now_s, 0)
        else:
            self._failing[step] = (logged_s, count)

    def recovered(self, step: str) -> None:
        if self._failing.pop(step, None) is not None:
            logger.info("Recovered: %s works again", step)


class ServiceRuntime:
    """Owns the store, the tiering runner and the background tasks of one replica.

    Args:
        settings: the service settings.
        metrics: the application's metrics.
        store: an already open store to serve (tests); None opens one from ``settings``.
        opener: opens the store from the settings; replaced in tests.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        metrics: ServiceMetrics,
        store: TieredStore | None = None,
        opener: Callable[[ServiceSettings], TieredStore] = open_store,
    ):
        self.settings = settings
        self.metrics = metrics
        self.store: TieredStore | None = None
        self.runner: TieringRunner | None = None
        self.shared: SharedAccessTracker | None = None
        self.lease: LeaderLease | None = None
        self.tasks: list[PeriodicTask] = []
        self.open_error = ""
        self.gave_up = False
        self._given_store = store
        self._opener = opener
        self._stopping = threading.Event()
        self._opening: threading.Thread | None = None
        self._attach_lock = threading.Lock()
        self._degraded = DegradedLog(DEGRADED_LOG_INTERVAL_S)

    # Startup ---------------------------------------------------------------------

    def start(self) -> None:
        """Attach the given store, or start opening one in the background."""
        if self._given_store is not None:
            self._attach(self._given_store)
            return
        self._opening = threading.Thread(target=self._open_with_retries, name="tiering-open", daemon=True)
        self._opening.start()

    def _open_with_retries(self) -> None:
        attempts = self.settings.open_attempts
        for attempt in range(1, attempts + 1):
            try:
                store = self._opener(self.settings)
            except Exception as exc:
                self.open_error = f"{type(exc).__name__}: {exc}"
                backoff_s = min(MAX_OPEN_BACKOFF_S, 2.0 ** (attempt - 1))
                retry = f"retrying in {backoff_s:.0f} s" if attempt < attempts else "no attempts left"
                logger.warning(
                    "Opening the store failed (attempt %d of %d, %s): %s",
                    attempt, attempts, retry, exc, exc_info=not isinstance(exc, TieringError),
                )
                if attempt < attempts and self._stopping.wait(backoff_s):
                    return
                continue
            self._attach(store)
            return
        self.gave_up = True
        logger.error("Opening the store failed %d times; giving up: %s", attempts, self.open_error)

    def _attach(self, store: TieredStore) -> None:
        with self._attach_lock:
            if self._stopping.is_set():
                # stop() ran while the store was opening and has already returned, so close it here.
                store.close()
                return
            if self.settings.redis_url:
                redis_settings = RedisSettings(
                    url=self.settings.redis_url,
                    prefix=self.settings.redis_key_prefix,
                    socket_timeout_s=self.settings.redis_timeout_s,
                    connect_timeout_s=self.settings.redis_timeout_s,
                )
                client = connect(redis_settings)
                self.shared = SharedAccessTracker.adopt(store.tracker, client, redis_settings)
                store.tracker = self.shared
                lease_key = f"{redis_settings.prefix}:lease"
                self.lease = LeaderLease(
                    client, lease_key, self.settings.replica_name, self.settings.lease_ttl_s
                )
            self.runner = TieringRunner(store, self.metrics, self.shared, self.lease)
            self.store = store
            settings = self.settings
            if self.shared is not None:
                self.tasks.append(PeriodicTask("score-sync", settings.sync_interval_s, self.sync_scores))
            if settings.interval_s > 0:
                self.tasks.append(PeriodicTask("tiering", settings.interval_s, self.runner.run_scheduled))
            for task in self.tasks:
                task.start()
        logger.info(
            "Replica %s is serving; shared scores %s",
            self.settings.replica_name, "in Redis" if self.shared is not None else "off",
        )

    # Background work ---------------------------------------------------------------

    def sync_scores(self) -> None:
        """Flush hits to Redis, renew the lease, and reload the cold tier's manifest.

        Every replica reloads the manifest, because other replicas commit to it too:
        the leader writes segments, and every replica tombstones cold copies on upsert
        and delete. Failures are logged as degraded, at most once a minute per kind.
        """
        store, shared = self.store, self.shared
        if store is None or shared is None:
            return
        try:
            shared.flush()
            self.metrics.score_syncs.labels("ok").inc()
            self._degraded.recovered("flush")
        except SharedScoresError as exc:
            self.metrics.score_syncs.labels("failed").inc()
            self._degraded.failed("flush", exc)
        if self.lease is not None and self.lease.held:
            try:
                self.metrics.leader.set(1 if self.lease.renew() else 0)
                self._degraded.recovered("lease")
            except SharedScoresError as exc:
                self._degraded.failed("lease", exc)
        try:
            store.cold.refresh()
            self._degraded.recovered("manifest")
        except TieringError as exc:
            self._degraded.failed("manifest", exc)

    # Requests ----------------------------------------------------------------------

    def require_store(self) -> TieredStore:
        """Return the open store. Raises ServiceUnavailableError while it is not open."""
        store = self.store
        if store is None:
            detail = f" Last error: {self.open_error}" if self.open_error else ""
            raise ServiceUnavailableError(f"The store is not open yet.{detail}")
        return store

    def require_runner(self) -> TieringRunner:
        self.require_store()
        assert self.runner is not None
        return self.runner

    def readiness(self) -> Readiness:
        """Check that the store is open and that the backend returns a count."""
        store = self.store
        if store is None:
            reason = "opening the store failed; giving up" if self.gave_up else "opening the store"
            if self.open_error:
                reason += f" (last error: {self.open_error})"
            return Readiness(False, reason)
        try:
            store.count()
        except TieringError as exc:
            return Readiness(False, f"the backend did not answer: {exc}")
        return Readiness(True, "ready")

    def alive(self) -> bool:
        """Return False once opening the store has failed for good, so the orchestrator restarts us."""
        return not self.gave_up

    # Shutdown ----------------------------------------------------------------------

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the tasks, flush the last hits, release the lease and close the store. Idempotent."""
        if self._stopping.is_set():
            return
        started = time.monotonic()
        with self._attach_lock:
            self._stopping.set()
            tasks = list(self.tasks)
        for task in tasks:
            task.stop(max(0.1, timeout_s - (time.monotonic() - started)))
        if self._opening is not None:
            self._opening.join(max(0.1, timeout_s - (time.monotonic() - started)))
        store = self.store
        if store is None:
            return
        if self.shared is not None:
            try:
                # Pull before closing, so the access state saved beside the cold tier is the merged one.
                self.shared.sync(store.clock())
            except (SharedScoresError, TieringError) as exc:
                logger.warning("Final sync of access scores failed: %s", exc)
        if self.lease is not None:
            try:
                self.lease.release()
            except SharedScoresError as exc:
                logger.warning("Releasing the tiering lease failed; it expires on its own: %s", exc)
        try:
            store.close()
        except TieringError as exc:
            logger.error("Closing the store failed: %s", exc)
        logger.info("Replica %s stopped", self.settings.replica_name)
