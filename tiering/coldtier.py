"""The cold tier: segments and manifests on an object store, searched through FAISS.

The cold tier keeps one in-memory entry per live row (id, version, payload and the
row's place in its segment) and the FAISS index over the vectors. Vectors themselves
are read back from the segments when a caller fetches or promotes them.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tiering.coldindex import INDEX_KEY, INDEX_META_KEY, ColdIndex, IndexSettings
from tiering.errors import CorruptDataError, ObjectNotFoundError
from tiering.filters import Filter, matches
from tiering.manifest import Manifest, ManifestLog, SegmentEntry
from tiering.objectstore import ObjectStore
from tiering.records import Hit, Id, Metric, Record, Vector
from tiering.segment import SegmentRows, read_segment, sha256_hex, write_segment

logger = logging.getLogger(__name__)

SEGMENT_PREFIX = "segments/"
SEGMENT_CACHE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ColdRow:
    """In-memory metadata of one live cold row."""

    id: Id
    version: int
    payload: dict[str, Any]
    segment_key: str
    position: int


@dataclass(frozen=True)
class StagedSegment:
    """A segment written to the object store but not yet listed by a manifest."""

    key: str
    size_bytes: int
    sha256: str
    records: tuple[Record, ...]


class ColdTier:
    """Cold rows of one collection. Thread-safe; mutations are serialised by a lock."""

    def __init__(
        self,
        store: ObjectStore,
        dim: int,
        metric: Metric,
        index_settings: IndexSettings | None = None,
    ):
        self.store = store
        self.dim = dim
        self.metric = metric
        self.log = ManifestLog(store, dim, metric)
        self._index = ColdIndex(dim, metric, index_settings)
        self._lock = threading.RLock()
        self._manifest = Manifest(version=0, dim=dim, metric=metric)
        self._rows: dict[int, ColdRow] = {}
        self._row_of: dict[Id, int] = {}
        self._duplicate_rows: set[int] = set()
        self._segment_cache: OrderedDict[str, SegmentRows] = OrderedDict()
        self._segment_cache_bytes = 0
        self.load()

    # Loading -----------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The manifest version this process has loaded."""
        return self._manifest

    def load(self) -> None:
        """Load the latest manifest, the row metadata, and the saved index (or rebuild it).

        Raises:
            CorruptDataError: the manifest or a segment is corrupt or missing.
        """
        with self._lock:
            manifest = self.log.latest()
            rows: dict[int, ColdRow] = {}
            for entry in manifest.segments:
                segment = self._read(entry)
                for position, row_id in enumerate(entry.row_ids()):
                    if row_id not in manifest.tombstones:
                        rows[row_id] = ColdRow(
                            segment.ids[position],
                            int(segment.versions[position]),
                            segment.payloads[position],
                            entry.key,
                            position,
                        )
            self._manifest = manifest
            self._set_rows(rows)
            self._load_index()

    def _set_rows(self, rows: dict[int, ColdRow]) -> None:
        self._rows = rows
        self._row_of = {}
        self._duplicate_rows = set()
        for row_id in sorted(rows):
            self._index_row(row_id, rows[row_id])

    def _index_row(self, row_id: int, row: ColdRow) -> None:
        # Concurrent writers can leave two live rows of one id. The newer version wins
        # (on a tie, the newer row), and the other row is tombstoned at the next commit.
        current = self._row_of.get(row.id)
        if current is not None and self._rows[current].version > row.version:
            self._duplicate_rows.add(row_id)
            return
        if current is not None:
            self._duplicate_rows.add(current)
        self._row_of[row.id] = row_id

    def _load_index(self) -> None:
        try:
            data = self.store.get(INDEX_KEY)
            meta = self.store.get(INDEX_META_KEY)
            saved_version = self._index.load_bytes(data, meta)
        except ObjectNotFoundError:
            logger.info("No saved cold index found; building it from the segments")
            self._rebuild_index()
            return
        except CorruptDataError as exc:
            logger.warning("Saved cold index is unusable; rebuilding from the segments", exc_info=exc)
            self._rebuild_index()
            return
        self._reconcile_index(saved_version)

    def _reconcile_index(self, saved_version: int) -> None:
        # A saved index may lag the manifest: drop rows that died since and add new ones.
        indexed = set(self._index.row_ids().tolist())
        live = set(self._rows)
        self._index.remove(indexed - live)
        missing = live - indexed
        for entry in self._manifest.segments:
            rows = [row for row in entry.row_ids() if row in missing]
            if rows:
                segment = self._read(entry)
                self._index.add(rows, segment.vectors[[row - entry.first_row_id for row in rows]])
        logger.info(
            "Loaded the saved cold index of manifest version %d at version %d: %d rows removed, %d added",
            saved_version,
            self._manifest.version,
            len(indexed - live),
            len(missing),
        )

    def _rebuild_index(self) -> None:
        row_ids = np.fromiter(sorted(self._rows), dtype=np.int64, count=len(self._rows))
        vectors = np.zeros((len(row_ids), self.dim), dtype=np.float32)
        position_of = {int(row): n for n, row in enumerate(row_ids)}
        for entry in self._manifest.segments:
            segment = self._read(entry)
            for position, row_id in enumerate(entry.row_ids()):
                slot = position_of.get(row_id)
                if slot is not None:
                    vectors[slot] = segment.vectors[position]
        self._index.rebuild(row_ids, vectors)
        logger.info("Built the cold index (%s) over %d rows", self._index.kind, len(row_ids))

    def _read(self, entry: SegmentEntry) -> SegmentRows:
        # Segments are always decoded with their vectors, so one cache entry serves both uses.
        cached = self._segment_cache.get(entry.key)
        if cached is not None:
            self._segment_cache.move_to_end(entry.key)
            return cached
        try:
            data = self.store.get(entry.key)
        except ObjectNotFoundError as exc:
            raise CorruptDataError(
                f"Segment {entry.key!r} listed by manifest version {self._manifest.version} is "
                "missing from the object store. Restore it from a backup."
            ) from exc
        segment = read_segment(data, entry.key, entry.sha256, with_vectors=True)
        self._remember(entry.key, segment)
        return segment

    def _remember(self, key: str, segment: SegmentRows) -> None:
        self._segment_cache[key] = segment
        self._segment_cache_bytes += segment.vectors.nbytes
        while self._segment_cache_bytes > SEGMENT_CACHE_BYTES and len(self._segment_cache) > 1:
            _key, evicted = self._segment_cache.popitem(last=False)
            self._segment_cache_bytes -= evicted.vectors.nbytes

    # Reading -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._row_of

    def ids(self) -> list[Id]:
        """Return every live cold id."""
        with self._lock:
            return list(self._row_of)

    def version_of(self, record_id: Id) -> int | None:
        """Return the version of the cold copy of ``record_id``, or None."""
        with self._lock:
            row_id = self._row_of.get(record_id)
            return None if row_id is None else self._rows[row_id].version

    def payload_fields(self) -> set[str]:
        """Return every payload key that a live cold row has."""
        with self._lock:
            return {key for row in self._rows.values() for key in row.payload}

    def vector_bytes(self) -> int:
        """Return the raw size of the live cold vectors (float32)."""
        return len(self) * self.dim * 4

    def index_bytes(self) -> int:
        """Return the size of the FAISS index, an estimate of its memory use."""
        return self._index.memory_bytes()

    def search(self, queries: Vector, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """Return up to ``k`` cold hits per query, best first, in the score convention."""
        with self._lock:
            allowed = None
            if filter is not None:
                allowed = np.fromiter(
                    (
                        row_id
                        for row_id in self._row_of.values()
                        if matches(filter, self._rows[row_id].payload)
                    ),
                    dtype=np.int64,
                )
            elif self._duplicate_rows:
                allowed = np.fromiter(self._row_of.values(), dtype=np.int64)
            row_ids, scores = self._index.search(queries, k, allowed)
            results = []
            for query_rows, query_scores in zip(row_ids, scores, strict=True):
                hits = []
                for row_id, score in zip(query_rows, query_scores, strict=True):
                    row = self._rows.get(int(row_id))
                    if row is not None:
                        hits.append(Hit(row.id, float(score), "cold", row.version, row.payload))
                results.append(hits)
            return results

    def fetch(self, ids: Iterable[Id]) -> list[Record]:
        """Return the cold records among ``ids``, with vectors read from their segments."""
        with self._lock:
            entries = {entry.key: entry for entry in self._manifest.segments}
            found = []
            for record_id in ids:
                row_id = self._row_of.get(record_id)
                if row_id is None:
                    continue
                row = self._rows[row_id]
                segment = self._read(entries[row.segment_key])
                vector = segment.vectors[row.position].copy()
                found.append(Record(row.id, vector, row.payload, row.version))
            return found

    # Writing -----------------------------------------------------------------

    def stage_segment(self, records: Sequence[Record], key: str | None = None) -> StagedSegment:
        """Write ``records`` as a new segment object under ``key``; nothing lists it yet.

        Raises ObjectStoreError, or PreconditionFailedError when ``key`` exists.
        """
        data = write_segment(records, self.dim, int(time.time() * 1000))
        key = key or f"{SEGMENT_PREFIX}{uuid.uuid4().hex}.parquet"
        self.store.put(key, data, if_none_match=True)
        logger.info("Wrote segment %s: %d rows, %d bytes", key, len(records), len(data))
        rows = SegmentRows(
            ids=[record.id for record in records],
            vectors=np.stack([np.asarray(record.vector, dtype=np.float32) for record in records]),
            payloads=[dict(record.payload) for record in records],
            versions=np.asarray([record.version for record in records], dtype=np.int64),
        )
        with self._lock:
            self._remember(key, rows)
        return StagedSegment(key, len(data), sha256_hex(data), tuple(records))

    def commit_segment(self, staged: StagedSegment) -> Manifest:
        """Commit a manifest version that lists ``staged``, and add its rows to the index.

        Raises ManifestConflictError, ObjectStoreError.
        """
        with self._lock:
            duplicates = set(self._duplicate_rows)

            def add_segment(base: Manifest) -> Manifest:
                listed = base.with_segment(staged.key, len(staged.records), staged.size_bytes, staged.sha256)
                return listed.with_tombstones(duplicates) if duplicates else listed

            manifest = self.log.commit(add_segment)
            self._apply(manifest)
            return manifest

    def commit_tombstones(self, ids: Iterable[Id]) -> Manifest:
        """Tombstone the live cold rows of ``ids`` in a new manifest version.

        Ids that are not cold are ignored; when none is, nothing is written.
        Raises ManifestConflictError, ObjectStoreError.
        """
        with self._lock:
            dead = {self._row_of[i] for i in ids if i in self._row_of} | self._duplicate_rows
            if not dead:
                return self._manifest
            manifest = self.log.commit(lambda base: base.with_tombstones(dead))
            self._apply(manifest)
            return manifest

    def _apply(self, manifest: Manifest) -> None:
        if manifest.parent_version != self._manifest.version:
            # Another writer committed in between: reload everything it changed.
            logger.info(
                "Manifest moved from version %d to %d elsewhere; reloading the cold tier",
                self._manifest.version,
                manifest.version,
            )
            self.load()
            return
        old = self._manifest
        self._manifest = manifest
        removed = {
            row
            for row in self._rows
            if row in manifest.tombstones or manifest.segment_for_key(self._rows[row].segment_key) is None
        }
        for row_id in removed:
            row = self._rows.pop(row_id)
            if self._row_of.get(row.id) == row_id:
                del self._row_of[row.id]
        self._duplicate_rows -= removed
        self._index.remove(removed)
        old_keys = {entry.key for entry in old.segments}
        for entry in manifest.segments:
            if entry.key not in old_keys:
                self._add_entry(entry)

    def _add_entry(self, entry: SegmentEntry) -> None:
        segment = self._read(entry)
        for position, row_id in enumerate(entry.row_ids()):
            row = ColdRow(
                segment.ids[position],
                int(segment.versions[position]),
                segment.payloads[position],
                entry.key,
                position,
            )
            self._rows[row_id] = row
            self._index_row(row_id, row)
        if self._index.needs_rebuild(entry.rows):
            self._rebuild_index()
        else:
            self._index.add(entry.row_ids(), segment.vectors)

    def save_index(self) -> None:
        """Save the FAISS index with its checksum beside the segments. Raises ObjectStoreError."""
        with self._lock:
            data, meta = self._index.to_bytes(self._manifest.version)
            self.store.put(INDEX_KEY, data)
            self.store.put(INDEX_META_KEY, meta)
        logger.info("Saved the cold index: %d rows, %d bytes", len(self._index), len(data))

    def refresh(self) -> None:
        """Reload when another writer committed a newer manifest version."""
        with self._lock:
            versions = self.log.versions()
            if versions and versions[-1] != self._manifest.version:
                self.load()
