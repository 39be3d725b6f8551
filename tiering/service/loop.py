"""The background work of a sidecar: tiering passes and periodic tasks.

:class:`TieringRunner` runs one pass at a time on this replica. With Redis it runs
passes only while this replica holds the tiering lease, and it pulls the merged
access scores right before each pass. :class:`PeriodicTask` calls a function every N seconds in a thread,
logs and counts a failure, and tries again at the next interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tiering.errors import TieringError
from tiering.service.lease import LeaderLease
from tiering.service.metrics import ServiceMetrics
from tiering.shared_scores import SharedAccessTracker, SharedScoresError
from tiering.store import TieredStore, TieringResult

logger = logging.getLogger(__name__)


class TieringBusyError(TieringError):
    """A tiering pass is already running here, or another replica holds the tiering lease."""


@dataclass(frozen=True)
class PassRecord:
    """The outcome of the latest tiering pass, for the status endpoint."""

    finished_at_s: float
    result: str
    dry_run: bool
    demoted: int = 0
    promoted: int = 0
    duration_s: float = 0.0
    message: str = ""


class TieringRunner:
    """Runs tiering passes on one store, never two at once. Thread-safe.

    Args:
        store: the open store.
        metrics: where passes are counted.
        shared: the shared tracker that ``store.tracker`` is, when scores live in Redis.
        lease: the tiering lease, when several replicas share the backend.
    """

    def __init__(
        self,
        store: TieredStore,
        metrics: ServiceMetrics,
        shared: SharedAccessTracker | None = None,
        lease: LeaderLease | None = None,
    ):
        self.store = store
        self.metrics = metrics
        self.shared = shared
        self.lease = lease
        self.last_pass: PassRecord | None = None
        self._running = threading.Lock()

    def run_pass(self, dry_run: bool = False) -> TieringResult:
        """Run one pass (or plan one, with ``dry_run``) and return its result.

        Failures are counted and kept in :attr:`last_pass` but not logged: the caller
        logs them once.

        Raises:
            TieringBusyError: a pass is running on this replica, or another replica
                holds the lease (a dry run needs no lease).
            SharedScoresError: Redis is unreachable, so the lease cannot be checked.
            TieringError: the pass failed; every vector is still in a tier.
        """
        if not self._running.acquire(blocking=False):
            self.metrics.passes.labels("skipped").inc()
            raise TieringBusyError("A tiering pass is already running on this replica; retry when it ends.")
        try:
            leader = self._take_lease(dry_run)
            self._pull_scores(restore=leader)
            result = self.store.tier(dry_run=dry_run)
        except (TieringBusyError, SharedScoresError) as exc:
            self._finish("skipped", dry_run, message=str(exc))
            raise
        except Exception as exc:
            self._finish("failed", dry_run, message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._running.release()
        self._finish("dry_run" if dry_run else "ok", dry_run, result=result)
        return result

    def run_scheduled(self) -> None:
        """Run a pass from the background loop and log its failure; never raises.

        A replica without the lease skips quietly; with Redis unreachable the pass is
        skipped with a warning, so that two replicas never tier at once.
        """
        try:
            self.run_pass()
        except TieringBusyError as exc:
            logger.debug("Scheduled tiering pass skipped: %s", exc)
        except SharedScoresError as exc:
            logger.warning("Scheduled tiering pass skipped: %s", exc)
        except TieringError as exc:
            logger.error("Tiering pass failed; the next one runs in one interval: %s", exc)
        except Exception:
            logger.exception("Tiering pass failed unexpectedly; the next one runs in one interval")

    def _take_lease(self, dry_run: bool) -> bool:
        if self.lease is None:
            return True
        if dry_run:
            return self.lease.held
        try:
            held = self.lease.acquire()
        except SharedScoresError:
            self.metrics.leader.set(0)
            raise
        self.metrics.leader.set(1 if held else 0)
        if not held:
            holder = self.lease.holder() or "another replica"
            raise TieringBusyError(
                f"Tiering lease {self.lease.key!r} is taken by replica {holder}, so this replica "
                f"({self.lease.holder_id}) does not tier now. Send the request to the holder or retry later."
            )
        return True

    def _pull_scores(self, restore: bool) -> None:
        if self.shared is None:
            return
        try:
            self.shared.sync(self.store.clock(), restore=restore)
        except SharedScoresError as exc:
            logger.warning("Planning with this replica's local access scores: %s", exc)

    def _finish(
        self, outcome: str, dry_run: bool, result: TieringResult | None = None, message: str = ""
    ) -> None:
        self.metrics.passes.labels(outcome).inc()
        if result is None:
            self.last_pass = PassRecord(time.time(), outcome, dry_run, message=message)
            return
        plan = result.plan
        if not dry_run:
            self.metrics.demoted.inc(result.demoted)
            self.metrics.promoted.inc(result.promoted)
            self.metrics.pass_seconds.observe(result.duration_s)
        self.last_pass = PassRecord(
            time.time(), outcome, dry_run, result.demoted, result.promoted, result.duration_s
        )
        logger.info(
            "Tiering %s: %d hot, %d cold, hot limit %d; %d demoted, %d promoted in %.2f s",
            "plan" if dry_run else "pass", plan.hot_count, plan.cold_count, plan.hot_limit,
            result.demoted, result.promoted, result.duration_s,
        )


class PeriodicTask:
    """Calls ``action`` every ``interval_s`` seconds in a daemon thread until stopped.

    The first call happens one interval after :meth:`start`. An exception from
    ``action`` is logged with its traceback and counted in ``failures``; the next call
    happens at the next interval.
    """

    def __init__(self, name: str, interval_s: float, action: Callable[[], None]):
        self.name = name
        self.interval_s = interval_s
        self.runs = 0
        self.failures = 0
        self._action = action
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"tiering-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        logger.info("Started the %s task every %.1f s", self.name, self.interval_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._action()
            except Exception:
                self.failures += 1
                logger.warning(
                    "The %s task failed (%d failures so far)", self.name, self.failures, exc_info=True
                )
            finally:
                self.runs += 1

    def stop(self, timeout_s: float) -> bool:
        """Ask the thread to stop and wait up to ``timeout_s``; return whether it stopped.

        A call in progress finishes first; a thread still busy after the timeout is
        left to end with the process (it is a daemon).
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            logger.warning("The %s task did not stop within %.1f s", self.name, timeout_s)
            return False
        return True
