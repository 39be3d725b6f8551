"""Access scores: a per-id count of reads that decays exponentially with a half-life.

The score of an id at time ``t`` is the sum over its accesses at times ``t_i`` of
``weight_i * 2 ** (-(t - t_i) / half_life_s)``. Each access is stored multiplied by
``2 ** ((t_i - origin_s) / half_life_s)``, so recording one is a single vectorised
addition and nothing decays in place. The origin moves forward before the factors
could overflow a float64.

Besides the score, the tracker keeps two times per id. The last access (or the first
registration) gives the policy its idle time, and the last move between tiers gives it
the cooldown.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from tiering.errors import ConfigurationError, CorruptDataError
from tiering.records import Id, decode_id, encode_id

_MAX_EXPONENT = 512.0


class AccessTracker:
    """Decaying access scores per id. Thread-safe."""

    def __init__(self, half_life_s: float, capacity: int = 1024):
        if not half_life_s > 0:
            raise ConfigurationError(f"Invalid half_life_s {half_life_s!r}: it must be positive.")
        self.half_life_s = float(half_life_s)
        self._origin_s: float | None = None
        self._slots: dict[Id, int] = {}
        self._ids: list[Id | None] = [None] * capacity
        self._weighted = np.zeros(capacity, dtype=np.float64)
        self._last_access_s = np.zeros(capacity, dtype=np.float64)
        self._last_move_s = np.full(capacity, -np.inf, dtype=np.float64)
        self._free: list[int] = list(range(capacity - 1, -1, -1))
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._slots

    def ids(self) -> list[Id]:
        """Return every tracked id."""
        with self._lock:
            return list(self._slots)

    def _factor(self, now_s: float) -> float:
        if self._origin_s is None:
            self._origin_s = now_s
        exponent = (now_s - self._origin_s) / self.half_life_s
        if exponent > _MAX_EXPONENT:
            self._weighted *= 2.0**-exponent
            self._origin_s = now_s
            exponent = 0.0
        return float(2.0**exponent)

    def _slots_for(self, ids: Iterable[Id], now_s: float) -> npt.NDArray[np.int64]:
        slots = []
        for record_id in ids:
            slot = self._slots.get(record_id)
            if slot is None:
                if not self._free:
                    self._grow()
                slot = self._free.pop()
                self._slots[record_id] = slot
                self._ids[slot] = record_id
                self._weighted[slot] = 0.0
                self._last_access_s[slot] = now_s
                self._last_move_s[slot] = -np.inf
            slots.append(slot)
        return np.asarray(slots, dtype=np.int64)

    def _grow(self) -> None:
        old = len(self._ids)
        self._ids.extend([None] * old)
        self._weighted = np.concatenate([self._weighted, np.zeros(old)])
        self._last_access_s = np.concatenate([self._last_access_s, np.zeros(old)])
        self._last_move_s = np.concatenate([self._last_move_s, np.full(old, -np.inf)])
        self._free.extend(range(2 * old - 1, old - 1, -1))

    def register(self, ids: Sequence[Id], now_s: float) -> None:
        """Start tracking ``ids`` (score 0, idle since ``now_s``); known ids are untouched."""
        with self._lock:
            self._slots_for(ids, now_s)

    def record(self, ids: Sequence[Id], now_s: float, weight: float = 1.0) -> None:
        """Add ``weight`` to the score of each id (repeats count each time) at ``now_s``."""
        if not ids:
            return
        with self._lock:
            factor = self._factor(now_s)
            slots = self._slots_for(ids, now_s)
            np.add.at(self._weighted, slots, weight * factor)
            self._last_access_s[slots] = now_s

    def mark_moved(self, ids: Sequence[Id], now_s: float) -> None:
        """Record that ``ids`` moved between tiers at ``now_s`` (for the cooldown)."""
        with self._lock:
            self._last_move_s[self._slots_for(ids, now_s)] = now_s

    def forget(self, ids: Iterable[Id]) -> None:
        """Stop tracking ``ids`` (deleted records)."""
        with self._lock:
            for record_id in ids:
                slot = self._slots.pop(record_id, None)
                if slot is not None:
                    self._ids[slot] = None
                    self._free.append(slot)

    def snapshot(
        self, ids: Sequence[Id], now_s: float
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Return (scores, idle seconds, seconds since last move) for ``ids`` at ``now_s``.

        Untracked ids are registered first.
        """
        with self._lock:
            slots = self._slots_for(ids, now_s)
            factor = self._factor(now_s)
            scores = self._weighted[slots] / factor
            idle_s = now_s - self._last_access_s[slots]
            since_move_s = now_s - self._last_move_s[slots]
            return scores, idle_s, since_move_s

    def memory_bytes(self) -> int:
        """Return an estimate of the bytes held per tracked id times the count.

        Counts the arrays, the id list and the dict entries (about 100 bytes each in
        CPython 3.11, more for long string ids).
        """
        import sys

        with self._lock:
            arrays = self._weighted.nbytes + self._last_access_s.nbytes + self._last_move_s.nbytes
            lists = sys.getsizeof(self._ids) + sys.getsizeof(self._free)
            table = sys.getsizeof(self._slots)
            keys = sum(sys.getsizeof(record_id) for record_id in self._slots)
            return int(arrays + lists + table + keys)

    def to_bytes(self) -> bytes:
        """Serialise the tracker as an ``.npz`` archive (no pickle)."""
        with self._lock:
            slots = np.asarray(list(self._slots.values()), dtype=np.int64)
            ids = np.asarray([encode_id(i) for i in self._slots], dtype=np.str_)
            meta = json.dumps({"half_life_s": self.half_life_s, "origin_s": self._origin_s})
            buffer = io.BytesIO()
            np.savez_compressed(
                buffer,
                ids=ids,
                weighted=self._weighted[slots],
                last_access_s=self._last_access_s[slots],
                last_move_s=self._last_move_s[slots],
                meta=np.asarray(meta),
            )
            return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, half_life_s: float) -> AccessTracker:
        """Restore a tracker saved by :meth:`to_bytes`, keeping the configured half-life.

        Raises:
            CorruptDataError: the archive is unreadable.
        """
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                ids = [decode_id(str(text)) for text in archive["ids"]]
                weighted = archive["weighted"]
                last_access_s = archive["last_access_s"]
                last_move_s = archive["last_move_s"]
                meta = json.loads(str(archive["meta"]))
        except (OSError, ValueError, KeyError) as exc:
            raise CorruptDataError(f"Saved access scores are unreadable: {exc}") from exc
        tracker = cls(half_life_s, capacity=max(1024, len(ids)))
        # The stored factors equal the scores at origin_s, so they stay valid when the
        # configured half-life changed. Only the decay after origin_s follows the new one.
        tracker._origin_s = meta["origin_s"]
        tracker._slots = {record_id: n for n, record_id in enumerate(ids)}
        tracker._ids[: len(ids)] = ids
        tracker._weighted[: len(ids)] = weighted
        tracker._last_access_s[: len(ids)] = last_access_s
        tracker._last_move_s[: len(ids)] = last_move_s
        tracker._free = list(range(len(tracker._ids) - 1, len(ids) - 1, -1))
        return tracker
