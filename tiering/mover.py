"""The mover: demotions, promotions, and recovery of moves a crash interrupted.

Each move first writes a journal entry (``journal/<uuid>.json``) naming its ids and
segment, and removes it last. The order of the steps keeps every record in at least
one tier at every instant:

* demote: journal, read from the backend, upload a segment, commit a manifest that
  lists it (the rows are now cold), save the index, delete from the backend, journal;
* promote: journal, read the cold rows, upsert to the backend (the rows are now hot),
  commit a manifest that tombstones them, save the index, journal.

A crash between steps leaves a record in both tiers, in one tier, or an unlisted
segment. :meth:`Mover.recover` settles journal entries when a store opens and before
each tiering pass: a record in both tiers keeps its newer version (on a tie, the tier the
move was heading to). An unlisted segment is left for garbage collection
(:mod:`tiering.gc`) rather than deleted, because the writer may still be about to
commit it.

Entries carry the id of the writer that made them. A writer settles its own entries at
once, and another writer's only after ``lease_s`` seconds. So opening a store does not
settle a move that a live process with another writer id is still running.

``fault_hook``, when set, is called with each step's name right after the step; tests
use it to inject failures and kills.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tiering.backend import Backend
from tiering.coldtier import SEGMENT_PREFIX, ColdTier
from tiering.errors import CorruptDataError, ObjectNotFoundError
from tiering.objectstore import ObjectStore
from tiering.records import Id, decode_id, encode_id

logger = logging.getLogger(__name__)

JOURNAL_PREFIX = "journal/"

DEMOTE_STEPS = (
    "journal_written",
    "backend_read",
    "segment_uploaded",
    "manifest_committed",
    "index_saved",
    "backend_deleted",
    "journal_removed",
)
PROMOTE_STEPS = (
    "journal_written",
    "cold_read",
    "backend_written",
    "manifest_committed",
    "index_saved",
    "journal_removed",
)

FaultHook = Callable[[str], None]


@dataclass(frozen=True)
class JournalEntry:
    """One move in progress, as written to the object store."""

    key: str
    operation: str
    ids: tuple[Id, ...]
    segment_key: str | None = None
    writer_id: str = ""
    created_at_ms: int = 0

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "operation": self.operation,
                "ids": [encode_id(i) for i in self.ids],
                "segment_key": self.segment_key,
                "writer_id": self.writer_id,
                "created_at_ms": self.created_at_ms,
            }
        ).encode()

    @classmethod
    def from_json(cls, key: str, data: bytes) -> JournalEntry:
        try:
            document = json.loads(data)
            return cls(
                key=key,
                operation=str(document["operation"]),
                ids=tuple(decode_id(text) for text in document["ids"]),
                segment_key=document.get("segment_key"),
                writer_id=str(document.get("writer_id", "")),
                created_at_ms=int(document.get("created_at_ms", 0)),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptDataError(f"Journal entry {key!r} is unreadable: {exc}") from exc


class Mover:
    """Moves records between the backend and the cold tier. Not thread-safe: callers
    serialise moves (TieredStore holds its write lock)."""

    def __init__(
        self,
        backend: Backend,
        cold: ColdTier,
        store: ObjectStore,
        fault_hook: FaultHook | None = None,
        save_index: bool = True,
        writer_id: str = "",
        lease_s: float = 300.0,
    ):
        self.backend = backend
        self.cold = cold
        self.store = store
        self.fault_hook = fault_hook
        self.save_index = save_index
        self.writer_id = writer_id
        self.lease_s = lease_s

    def _step(self, name: str) -> None:
        if self.fault_hook is not None:
            self.fault_hook(name)

    def _write_journal(self, operation: str, ids: Sequence[Id], segment_key: str | None) -> JournalEntry:
        entry = JournalEntry(
            f"{JOURNAL_PREFIX}{uuid.uuid4().hex}.json",
            operation,
            tuple(ids),
            segment_key,
            self.writer_id,
            int(time.time() * 1000),
        )
        self.store.put(entry.key, entry.to_json(), if_none_match=True)
        return entry

    def write_intent(self, operation: str, ids: Sequence[Id]) -> JournalEntry:
        """Journal an operation other than a move (an overwrite of cold ids)."""
        return self._write_journal(operation, ids, None)

    def finish(self, entry: JournalEntry) -> None:
        """Remove a journal entry once its operation is complete."""
        self.store.delete([entry.key])

    def demote(self, ids: Sequence[Id]) -> int:
        """Move ``ids`` from the backend to one new segment; return how many moved.

        Ids missing from the backend are skipped. Raises BackendError, ObjectStoreError,
        ManifestConflictError; after any of them every record is still in a tier.
        """
        segment_key = f"{SEGMENT_PREFIX}{uuid.uuid4().hex}.parquet"
        entry = self._write_journal("demote", ids, segment_key)
        self._step("journal_written")
        records = self.backend.fetch(ids)
        self._step("backend_read")
        if records:
            staged = self.cold.stage_segment(records, key=segment_key)
            self._step("segment_uploaded")
            self.cold.commit_segment(staged)
            self._step("manifest_committed")
            if self.save_index:
                self.cold.save_index()
            self._step("index_saved")
            self.backend.delete([record.id for record in records])
            self._step("backend_deleted")
        self.finish(entry)
        self._step("journal_removed")
        logger.info("Demoted %d vectors to %s", len(records), segment_key)
        return len(records)

    def promote(self, ids: Sequence[Id]) -> int:
        """Move ``ids`` from the cold tier back to the backend; return how many moved.

        Raises BackendError, ObjectStoreError, ManifestConflictError; after any of them
        every record is still in a tier.
        """
        entry = self._write_journal("promote", ids, None)
        self._step("journal_written")
        records = self.cold.fetch(ids)
        self._step("cold_read")
        if records:
            self.backend.upsert(records)
            self._step("backend_written")
            self.cold.commit_tombstones([record.id for record in records])
            self._step("manifest_committed")
            if self.save_index:
                self.cold.save_index()
            self._step("index_saved")
        self.finish(entry)
        self._step("journal_removed")
        logger.info("Promoted %d vectors", len(records))
        return len(records)

    def pending(self) -> list[JournalEntry]:
        """Return the journal entries of unfinished operations."""
        entries = []
        for info in self.store.list(JOURNAL_PREFIX):
            try:
                entries.append(JournalEntry.from_json(info.key, self.store.get(info.key)))
            except ObjectNotFoundError:
                continue
        return entries

    def recover(self) -> int:
        """Settle unfinished operations of this writer, and of others past their lease.

        Returns how many journal entries were settled. Raises BackendError,
        ObjectStoreError: recovery stops and is retried on the next open or pass.
        """
        entries = self.pending()
        if entries:
            # Another writer may have committed the manifest this entry depends on.
            self.cold.refresh()
        now_ms = time.time() * 1000
        settled = 0
        for entry in entries:
            age_s = (now_ms - entry.created_at_ms) / 1000
            if entry.writer_id != self.writer_id and age_s < self.lease_s:
                logger.info(
                    "Leaving %s of writer %r alone for %.0f s more: it may still be running",
                    entry.key,
                    entry.writer_id,
                    self.lease_s - age_s,
                )
                continue
            self._settle(entry)
            self.store.delete([entry.key])
            settled += 1
            logger.info(
                "Recovered an interrupted %s of %d ids (%s, writer %r)",
                entry.operation,
                len(entry.ids),
                entry.key,
                entry.writer_id,
            )
        return settled

    def _settle(self, entry: JournalEntry) -> None:
        listed = entry.segment_key is not None and (
            self.cold.manifest.segment_for_key(entry.segment_key) is not None
        )
        if entry.operation == "demote" and not listed:
            # The segment never became visible, so the backend still has every record.
            # Garbage collection deletes the segment once no journal entry names it.
            return
        hot_versions = {record.id: record.version for record in self.backend.fetch(entry.ids)}
        drop_hot: list[Id] = []
        drop_cold: list[Id] = []
        for record_id, hot_version in hot_versions.items():
            cold_version = self.cold.version_of(record_id)
            if cold_version is None:
                continue
            if hot_version > cold_version:
                drop_cold.append(record_id)
            elif hot_version < cold_version or entry.operation == "demote":
                drop_hot.append(record_id)
            else:
                drop_cold.append(record_id)
        if drop_cold:
            self.cold.commit_tombstones(drop_cold)
        if drop_hot:
            self.backend.delete(drop_hot)
        if drop_cold or drop_hot:
            self.cold.save_index()
