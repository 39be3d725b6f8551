"""TieredStore: the client wrapper a RAG application uses in place of its vector store client."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tiering.access import AccessTracker
from tiering.backend import Backend
from tiering.coldtier import ColdTier
from tiering.config import ColdSearch, TieringConfig
from tiering.connect import open_cold_store
from tiering.errors import FilterError, ObjectNotFoundError, ValidationError
from tiering.filters import Filter, fields, parse_filter
from tiering.mover import FaultHook, Mover
from tiering.objectstore import ObjectStore
from tiering.policy import Plan, make_plan
from tiering.records import (
    Hit,
    Id,
    Metric,
    Record,
    check_ids,
    check_k,
    check_payload,
    check_vectors,
    normalize_rows,
)
from tiering.segment import encode_payload

logger = logging.getLogger(__name__)

ACCESS_STATE_KEY = "state/access.npz"
DEFAULT_COLD_FOLDER = "./tiering-cold"


@dataclass(frozen=True)
class TierCounts:
    """How many vectors each tier holds."""

    hot: int
    cold: int

    @property
    def total(self) -> int:
        return self.hot + self.cold

    @property
    def hot_fraction(self) -> float:
        return self.hot / self.total if self.total else 1.0


@dataclass(frozen=True)
class TieringResult:
    """Outcome of one tiering pass: the plan and the moves made."""

    plan: Plan
    dry_run: bool
    demoted: int
    promoted: int
    duration_s: float
    saving_usd_per_month: float
    """Estimated monthly saving of the plan under the configured price model (an
    estimate from the dated price catalog; negative when the plan costs more)."""


class TieredStore:
    """A vector store client that keeps cold vectors in an object store.

    Reads and writes go to ``backend`` (the hot tier) and to the cold tier in
    ``cold_store``; :meth:`tier` moves vectors between them by access score. Searches
    are thread-safe and may run concurrently; writes and tiering passes are serialised.
    Opening a store settles any move a crash interrupted.

    Args:
        backend: the adapter of the vector store collection (the hot tier).
        cold_store: an object store, a folder path, or an ``s3://bucket/prefix`` URL
            (default: the folder ``./tiering-cold``).
        config: settings; see :class:`tiering.config.TieringConfig`.
        clock: returns the current time in seconds; replaced in simulations.
        fault_hook: called with each move step's name (failure injection in tests).
        close_backend: whether :meth:`close` also closes ``backend``.
    """

    def __init__(
        self,
        backend: Backend,
        cold_store: ObjectStore | str | Path | None = None,
        *,
        config: TieringConfig | None = None,
        clock: Callable[[], float] = time.time,
        fault_hook: FaultHook | None = None,
        close_backend: bool = True,
    ):
        self.backend = backend
        self.config = config or TieringConfig()
        self.clock = clock
        if cold_store is None or isinstance(cold_store, str | Path):
            cold_store = open_cold_store(cold_store or DEFAULT_COLD_FOLDER)
        self.object_store: ObjectStore = cold_store
        self.dim = backend.dim
        self.metric = backend.metric
        self._close_backend = close_backend
        self._closed = False
        self._write_lock = threading.RLock()
        self._pool: ThreadPoolExecutor | None = None
        self._last_version = 0

        self.cold = ColdTier(cold_store, self.dim, self.metric, self.config.index)
        self.mover = Mover(
            backend,
            self.cold,
            cold_store,
            fault_hook,
            writer_id=self.config.writer_id,
            lease_s=self.config.recovery_lease_s,
        )
        self.mover.recover()
        self.tracker = self._load_tracker()
        self._known_fields: set[str] = self.cold.payload_fields()
        parallel = self.config.parallel_tiers
        self._parallel_tiers = not getattr(backend, "in_process", False) if parallel is None else parallel

    def _load_tracker(self) -> AccessTracker:
        try:
            tracker = AccessTracker.from_bytes(
                self.object_store.get(ACCESS_STATE_KEY), self.config.half_life_s
            )
        except ObjectNotFoundError:
            tracker = AccessTracker(self.config.half_life_s)
        now_s = self.clock()
        tracker.register(self.cold.ids(), now_s)
        if len(tracker) == len(self.cold) and self.backend.count() > 0:
            # An existing collection seen for the first time: track every hot id.
            for batch in self.backend.iter_ids():
                tracker.register(batch, now_s)
        return tracker

    # Writing -----------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[Id],
        vectors: npt.ArrayLike,
        payloads: Sequence[Mapping[str, Any] | None] | None = None,
    ) -> list[int]:
        """Insert or overwrite records; return the version assigned to each.

        Args:
            ids: one id per vector, int (0 <= id < 2**63) or str; no repeats.
            vectors: shape (n, dim) or (dim,); finite values.
            payloads: one JSON-like mapping (or None) per vector.

        The new versions are hot; a cold copy of any of the ids is tombstoned.

        Raises:
            ValidationError: bad ids, vectors or payloads; nothing is written.
            BackendError, ObjectStoreError: the write failed part way; retrying is safe.
        """
        self._check_open()
        checked_ids = check_ids(list(ids))
        matrix = check_vectors(vectors, self.dim)
        if len(matrix) != len(checked_ids):
            raise ValidationError(
                f"Got {len(checked_ids)} ids but {len(matrix)} vectors; send one vector per id."
            )
        payload_list = [None] * len(checked_ids) if payloads is None else list(payloads)
        if len(payload_list) != len(checked_ids):
            raise ValidationError(
                f"Got {len(checked_ids)} ids but {len(payload_list)} payloads; "
                "send one payload (or None) per id."
            )
        checked_payloads = []
        for record_id, payload in zip(checked_ids, payload_list, strict=True):
            checked = check_payload(payload, record_id)
            encode_payload(checked, record_id)
            checked_payloads.append(checked)
        if self.metric is Metric.COSINE:
            matrix = normalize_rows(matrix)
        return self._write(checked_ids, matrix, checked_payloads)

    def _write(
        self, ids: list[Id], matrix: npt.NDArray[np.float32], payloads: list[dict[str, Any]]
    ) -> list[int]:
        with self._write_lock:
            overlap = [record_id for record_id in ids if record_id in self.cold]
            versions = self._next_versions(ids)
            records = [
                Record(record_id, matrix[n], payloads[n], versions[n]) for n, record_id in enumerate(ids)
            ]
            intent = self.mover.write_intent("overwrite", overlap) if overlap else None
            self.backend.upsert(records)
            self.tracker.register(ids, self.clock())
            for payload in payloads:
                self._known_fields.update(payload)
            if intent is not None:
                self.cold.commit_tombstones(overlap)
                self.mover.finish(intent)
            return versions

    def _next_versions(self, ids: Sequence[Id]) -> list[int]:
        # Versions come from the wall clock in nanoseconds and always exceed both the last
        # version issued here and the version of any cold copy, even if the clock stepped back.
        versions = []
        for record_id in ids:
            version = max(time.time_ns(), self._last_version + 1, (self.cold.version_of(record_id) or 0) + 1)
            self._last_version = version
            versions.append(version)
        return versions

    def delete(self, ids: Sequence[Id]) -> None:
        """Delete ``ids`` from both tiers; unknown ids are ignored. Idempotent.

        The cold copies are tombstoned before the backend delete, so a failure part way
        never brings a deleted id back.

        Raises:
            ValidationError: an id is invalid.
            BackendError, ObjectStoreError: retry the call.
        """
        self._check_open()
        checked = check_ids(list(ids), unique=False)
        with self._write_lock:
            self.cold.commit_tombstones(checked)
            self.backend.delete(checked)
            self.tracker.forget(checked)

    # Reading -----------------------------------------------------------------

    def search(
        self,
        queries: npt.ArrayLike,
        k: int = 10,
        filter: Filter | Mapping[str, Any] | None = None,
        cold: ColdSearch | str | None = None,
        track: bool = True,
    ) -> list[Hit] | list[list[Hit]]:
        """Return the ``k`` best hits over both tiers, best first, without repeated ids.

        Args:
            queries: one vector (dim,) or a batch (n, dim).
            k: hits per query, 1 to :data:`tiering.records.MAX_K`.
            filter: a filter tree or its dictionary form (see :mod:`tiering.filters`).
            cold: override the configured :class:`tiering.config.ColdSearch` mode.
            track: whether returned ids count as accesses; benchmarks and probes pass False.

        Returns:
            For one vector, a list of hits; for a batch, one list per query. Scores follow
            the convention of :mod:`tiering.records`; each hit names its tier.

        With ``track``, every returned id counts as one access.

        Raises:
            ValidationError, FilterError: bad input. BackendError: the backend failed.
        """
        self._check_open()
        single = np.ndim(queries) == 1
        matrix = check_vectors(queries, self.dim, what="query")
        k = check_k(k)
        node = self._check_filter(filter)
        mode = self.config.cold_search if cold is None else ColdSearch.parse(cold)

        merged = self._search_tiers(matrix, k, node, mode)

        if track:
            self.tracker.record([hit.id for hits in merged for hit in hits], self.clock())
        return merged[0] if single else merged

    def _search_tiers(
        self, matrix: npt.NDArray[np.float32], k: int, node: Filter | None, mode: ColdSearch
    ) -> list[list[Hit]]:
        use_cold = mode is not ColdSearch.NEVER and len(self.cold) > 0
        if use_cold and mode is ColdSearch.ALWAYS:
            if self._parallel_tiers:
                cold_future = self._executor().submit(self.cold.search, matrix, k, node)
                hot = self.backend.search(matrix, k, node)
                cold_hits = cold_future.result()
            else:
                cold_hits = self.cold.search(matrix, k, node)
                hot = self.backend.search(matrix, k, node)
            return [_merge(h, c, k) for h, c in zip(hot, cold_hits, strict=True)]
        hot = self.backend.search(matrix, k, node)
        if not use_cold:
            return hot
        weak = [n for n, hits in enumerate(hot) if self._needs_cold(hits, k)]
        if not weak:
            return hot
        cold_hits = self.cold.search(matrix[weak], k, node)
        merged = list(hot)
        for n, hits in zip(weak, cold_hits, strict=True):
            merged[n] = _merge(hot[n], hits, k)
        return merged

    def _needs_cold(self, hits: list[Hit], k: int) -> bool:
        if len(hits) < k:
            return True
        threshold = self.config.fallback_min_score
        return threshold is not None and hits[-1].score < threshold

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.config.search_threads, thread_name_prefix="tiering-search")
        return self._pool

    def _check_filter(self, spec: Filter | Mapping[str, Any] | None) -> Filter | None:
        node = parse_filter(spec)
        if node is None:
            return None
        unknown = sorted(set(fields(node)) - self._known_fields)
        if unknown:
            known = ", ".join(sorted(self._known_fields)) or "none"
            raise FilterError(
                f"Filter names field {unknown[0]!r}, which no stored record has. "
                f"Known payload fields: {known}."
            )
        return node

    def get(self, ids: Sequence[Id]) -> list[Record]:
        """Return the records among ``ids`` from whichever tier stores them, in request order.

        Missing ids are left out; repeated ids come back once. Each found id counts as one
        access. Raises ValidationError, BackendError, ObjectStoreError.
        """
        self._check_open()
        wanted = list(dict.fromkeys(check_ids(list(ids), unique=False)))
        found = {record.id: record for record in self.backend.fetch(wanted)}
        cold_ids = [record_id for record_id in wanted if record_id in self.cold]
        for record in self.cold.fetch(cold_ids):
            current = found.get(record.id)
            if current is None or record.version > current.version:
                found[record.id] = record
        self.tracker.record(list(found), self.clock())
        return [found[record_id] for record_id in wanted if record_id in found]

    def count(self) -> TierCounts:
        """Return the number of vectors in each tier. Raises BackendError."""
        self._check_open()
        return TierCounts(hot=self.backend.count(), cold=len(self.cold))

    # Tiering -----------------------------------------------------------------

    def plan(self) -> Plan:
        """Return the moves a tiering pass would make now, without making them."""
        self._check_open()
        with self._write_lock:
            self.cold.refresh()
            cold_ids = self.cold.ids()
            cold_set = set(cold_ids)
            hot_ids = [record_id for record_id in self.tracker.ids() if record_id not in cold_set]
            return make_plan(hot_ids, cold_ids, self.tracker, self.clock(), self.config.policy, self.dim)

    def tier(self, dry_run: bool = False) -> TieringResult:
        """Run one tiering pass: score, plan, then (unless ``dry_run``) demote and promote.

        Raises BackendError, ObjectStoreError, ManifestConflictError; a failed pass leaves
        every vector in a tier and the next pass continues.
        """
        started = time.perf_counter()
        with self._write_lock:
            self.mover.recover()
            plan = self.plan()
            demoted = promoted = 0
            if not dry_run and not plan.is_empty():
                for start in range(0, len(plan.promote), self.config.segment_rows):
                    chunk = plan.promote[start : start + self.config.segment_rows]
                    promoted += self.mover.promote(chunk)
                    self.tracker.mark_moved(chunk, self.clock())
                for start in range(0, len(plan.demote), self.config.segment_rows):
                    chunk = plan.demote[start : start + self.config.segment_rows]
                    demoted += self.mover.demote(chunk)
                    self.tracker.mark_moved(chunk, self.clock())
                self.save_state()
        duration_s = time.perf_counter() - started
        saving = self._estimate_saving(plan)
        if not dry_run:
            logger.info("Tiering pass: %d demoted, %d promoted in %.2f s", demoted, promoted, duration_s)
        return TieringResult(plan, dry_run, demoted, promoted, duration_s, saving)

    def _estimate_saving(self, plan: Plan) -> float:
        from tiering.cost import estimate_tiering_cost

        def monthly_cost(hot: int, cold: int) -> float:
            return estimate_tiering_cost(
                total_vectors=hot + cold,
                hot_vectors=hot,
                dim=self.dim,
                queries_per_month=self.config.queries_per_month,
                cold_index_bytes=cold * self.dim * 4,
                price_model=self.config.price_model,
            ).after_usd_per_month

        now = monthly_cost(plan.hot_count, plan.cold_count)
        return now - monthly_cost(plan.hot_count_after, plan.cold_count_after)

    def save_state(self) -> None:
        """Save the access scores beside the cold tier. Raises ObjectStoreError."""
        self.object_store.put(ACCESS_STATE_KEY, self.tracker.to_bytes())

    # Lifecycle ---------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ValidationError("This TieredStore is closed; open a new one.")

    def close(self) -> None:
        """Save the access scores, stop the search threads and close the backend. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.save_state()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            if self._close_backend:
                self.backend.close()

    def __enter__(self) -> TieredStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _merge(hot: list[Hit], cold: list[Hit], k: int) -> list[Hit]:
    """Merge two best-first hit lists into one without repeated ids; the newer version wins."""
    best: dict[Id, Hit] = {}
    for hit in (*hot, *cold):
        current = best.get(hit.id)
        if current is None or hit.version > current.version:
            best[hit.id] = hit
    return sorted(best.values(), key=lambda hit: -hit.score)[:k]
