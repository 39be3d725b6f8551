"""The manifest: the versioned record of live segments and tombstones.

Each version is a JSON object stored under ``manifests/v<version, 20 digits>.json``.
A version is created with ``put(..., if_none_match=True)`` and never rewritten, so two
writers cannot both commit the same version: the loser re-reads the latest version,
applies its change to it again, and retries a bounded number of times.

Global row ids number every cold row ever written. Segment ``s`` contains rows
``s.first_row_id .. s.first_row_id + s.rows - 1``; a row is live unless its row id is
in ``tombstones``. Row ids are assigned at commit time, so a rebased change gets fresh
ones. Example (indented here for reading)::

    {"format": "tiering-manifest-1", "version": 3, "parent_version": 2,
     "dim": 128, "metric": "l2", "next_row_id": 8000, "committed_at_ms": 1764880000000,
     "segments": [{"key": "segments/2f1c....parquet", "rows": 8000, "first_row_id": 0,
                   "size_bytes": 4300000, "sha256": "ab12..."}],
     "tombstones": [17, 18, 4005]}
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from tiering.errors import (
    ConfigurationError,
    CorruptDataError,
    ManifestConflictError,
    ObjectNotFoundError,
    PreconditionFailedError,
)
from tiering.objectstore import ObjectStore
from tiering.records import Metric

logger = logging.getLogger(__name__)

MANIFEST_PREFIX = "manifests/"
MANIFEST_FORMAT = "tiering-manifest-1"
MAX_COMMIT_ATTEMPTS = 10


@dataclass(frozen=True)
class SegmentEntry:
    """One live segment as the manifest lists it."""

    key: str
    rows: int
    first_row_id: int
    size_bytes: int
    sha256: str

    def row_ids(self) -> range:
        """Return the global row ids of this segment's rows, in file order."""
        return range(self.first_row_id, self.first_row_id + self.rows)


@dataclass(frozen=True)
class Manifest:
    """One committed (or staged) manifest version."""

    version: int
    dim: int
    metric: Metric
    segments: tuple[SegmentEntry, ...] = ()
    tombstones: frozenset[int] = field(default_factory=frozenset)
    next_row_id: int = 0
    parent_version: int | None = None
    committed_at_ms: int = 0

    def with_segment(self, key: str, rows: int, size_bytes: int, sha256: str) -> Manifest:
        """Return a copy that lists one more segment, numbered from ``next_row_id``."""
        entry = SegmentEntry(key, rows, self.next_row_id, size_bytes, sha256)
        return replace(self, segments=(*self.segments, entry), next_row_id=self.next_row_id + rows)

    def with_tombstones(self, row_ids: Iterable[int]) -> Manifest:
        """Return a copy with ``row_ids`` tombstoned and fully dead segments dropped.

        Row ids outside every listed segment are ignored: their segment is gone already.
        """
        listed = [entry.row_ids() for entry in self.segments]
        tombstones = set(self.tombstones)
        tombstones.update(row for row in row_ids if any(row in rows for rows in listed))
        live_segments = []
        for entry in self.segments:
            if all(row in tombstones for row in entry.row_ids()):
                tombstones.difference_update(entry.row_ids())
            else:
                live_segments.append(entry)
        return replace(self, segments=tuple(live_segments), tombstones=frozenset(tombstones))

    def segment_for_key(self, key: str) -> SegmentEntry | None:
        """Return the entry of the segment stored under ``key``, if listed."""
        return next((entry for entry in self.segments if entry.key == key), None)

    def live_rows(self) -> int:
        """Return the number of rows not tombstoned."""
        return sum(entry.rows for entry in self.segments) - len(self.tombstones)

    def to_json(self) -> bytes:
        """Return the manifest as UTF-8 JSON."""
        document = {
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "parent_version": self.parent_version,
            "dim": self.dim,
            "metric": self.metric.value,
            "next_row_id": self.next_row_id,
            "committed_at_ms": self.committed_at_ms,
            "segments": [entry.__dict__ for entry in self.segments],
            "tombstones": sorted(self.tombstones),
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes, key: str) -> Manifest:
        """Decode a manifest.

        Raises:
            CorruptDataError: the bytes are not a valid manifest document.
        """
        try:
            document = json.loads(data)
            if document.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format is {document.get('format')!r}, expected {MANIFEST_FORMAT!r}")
            return cls(
                version=int(document["version"]),
                dim=int(document["dim"]),
                metric=Metric(document["metric"]),
                segments=tuple(SegmentEntry(**entry) for entry in document["segments"]),
                tombstones=frozenset(int(row) for row in document["tombstones"]),
                next_row_id=int(document["next_row_id"]),
                parent_version=document.get("parent_version"),
                committed_at_ms=int(document.get("committed_at_ms", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise CorruptDataError(
                f"Manifest {key!r} is truncated or invalid ({exc}). Restore it from a backup; "
                "deleting it would roll the cold tier back to the previous version and lose "
                "the vectors that version added."
            ) from exc


def manifest_key(version: int) -> str:
    """Return the object key of a manifest version."""
    return f"{MANIFEST_PREFIX}v{version:020d}.json"


class ManifestLog:
    """Reads and commits manifest versions in one object store. Thread-safe."""

    def __init__(self, store: ObjectStore, dim: int, metric: Metric):
        self.store = store
        self.dim = dim
        self.metric = metric

    def versions(self) -> list[int]:
        """Return every committed version number, ascending."""
        found = []
        for info in self.store.list(MANIFEST_PREFIX):
            name = info.key[len(MANIFEST_PREFIX) :]
            if name.startswith("v") and name.endswith(".json") and name[1:-5].isdigit():
                found.append(int(name[1:-5]))
        return sorted(found)

    def load(self, version: int) -> Manifest:
        """Return one committed version. Raises ObjectNotFoundError, CorruptDataError."""
        key = manifest_key(version)
        manifest = Manifest.from_json(self.store.get(key), key)
        if manifest.version != version:
            raise CorruptDataError(f"Manifest {key!r} claims version {manifest.version}.")
        return manifest

    def latest(self) -> Manifest:
        """Return the newest version, or an empty version 0 when none exists.

        Raises:
            ConfigurationError: the stored cold tier has another dimension or metric.
            CorruptDataError: the newest manifest is unreadable.
        """
        versions = self.versions()
        if not versions:
            return Manifest(version=0, dim=self.dim, metric=self.metric)
        manifest = self.load(versions[-1])
        if manifest.dim != self.dim or manifest.metric is not self.metric:
            raise ConfigurationError(
                f"The cold tier in {self.store!r} holds {manifest.dim}-d {manifest.metric.value} "
                f"vectors, but the backend is {self.dim}-d {self.metric.value}. Point the store "
                "at another folder or prefix."
            )
        return manifest

    def commit(
        self,
        change: Callable[[Manifest], Manifest | None],
        *,
        max_attempts: int = MAX_COMMIT_ATTEMPTS,
    ) -> Manifest:
        """Apply ``change`` to the latest version and commit the result as the next version.

        ``change`` receives the latest manifest and returns the changed copy, or None when
        nothing needs to change (then the latest version is returned and nothing is
        written). It may be called several times, once per attempt, so it must be pure.

        Raises:
            ManifestConflictError: other writers won ``max_attempts`` races in a row.
            ObjectStoreError: the store failed.
        """
        for attempt in range(1, max_attempts + 1):
            base = self.latest()
            changed = change(base)
            if changed is None:
                return base
            staged = replace(
                changed,
                version=base.version + 1,
                parent_version=base.version,
                committed_at_ms=int(time.time() * 1000),
            )
            key = manifest_key(staged.version)
            try:
                self.store.put(key, staged.to_json(), if_none_match=True)
            except PreconditionFailedError:
                delay_s = min(2.0, 0.02 * 2**attempt) * random.uniform(0.5, 1.0)
                logger.warning(
                    "Manifest version %d was committed by another writer; retrying "
                    "(attempt %d of %d) in %.0f ms",
                    staged.version,
                    attempt,
                    max_attempts,
                    delay_s * 1000,
                )
                time.sleep(delay_s)
                continue
            logger.info(
                "Committed manifest version %d: %d segments, %d live rows",
                staged.version,
                len(staged.segments),
                staged.live_rows(),
            )
            return staged
        raise ManifestConflictError(
            f"Could not commit a manifest version after {max_attempts} attempts: other writers "
            "kept committing first. Run fewer concurrent tiering passes on this cold tier."
        )

    def exists(self, version: int) -> bool:
        """Return whether ``version`` was committed."""
        try:
            self.store.head(manifest_key(version))
        except ObjectNotFoundError:
            return False
        return True
