"""A local folder cache for cold tier objects, bounded in bytes.

:class:`CachedObjectStore` wraps any :class:`~tiering.objectstore.ObjectStore`. Reads
of immutable keys (segments, under ``segments/`` by default) are served from a local
folder after the first download, so a restart or a cold-tier rerank does not fetch
every segment again. Keys that are rewritten in place (the saved FAISS index under
``index/``) are cached too. Each read of one first sends a HEAD request for the
object's ETag and serves the local copy only when the ETag still matches.

Every entry records the SHA-256 of its bytes when it is written; each read hashes the
file again, and an entry that fails the check is deleted and downloaded again, never
served. When the cache grows past ``max_bytes`` the least recently used entries are
evicted. Entries are written to a temporary file and renamed into place, so a crash
leaves no partial entry and several processes may share one folder.

NOTE: each process counts only the entries it found at start and those it wrote, so
with several processes on one folder the bound holds per process, not for the folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tiering.errors import ConfigurationError, ObjectNotFoundError
from tiering.objectstore import ObjectInfo, ObjectStore

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 2 * 1024**3
IMMUTABLE_PREFIXES = ("segments/",)
VALIDATED_PREFIXES = ("index/",)


@dataclass(frozen=True)
class CacheEntry:
    """One cached object, as recorded beside its bytes."""

    key: str
    size_bytes: int
    sha256: str
    etag: str


@dataclass
class CacheStats:
    """Counters since the cache was opened."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    evictions: int = 0


class LocalObjectCache:
    """Objects stored in a local folder under a byte bound, evicted least recently used.

    Thread-safe. ``namespace`` separates several cold tiers that share one folder.
    """

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int, namespace: str = ""):
        if max_bytes <= 0:
            raise ConfigurationError(f"Invalid cache size {max_bytes} bytes: use a positive number.")
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the cache folder {self.folder}: {exc}. Choose a writable path."
            ) from exc
        self.max_bytes = max_bytes
        self.namespace = namespace
        self.stats = CacheStats()
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._size_bytes = 0
        self._scan()

    @property
    def size_bytes(self) -> int:
        """Bytes of all cached objects."""
        return self._size_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def _name(self, key: str) -> str:
        return hashlib.sha256(f"{self.namespace}\0{key}".encode()).hexdigest()

    def _paths(self, key: str) -> tuple[Path, Path]:
        name = self._name(key)
        return self.folder / f"{name}.bin", self.folder / f"{name}.json"

    def _scan(self) -> None:
        # Rebuild the LRU order from the entries' modification times (touched on each hit).
        found = []
        for meta_path in self.folder.glob("*.json"):
            try:
                document = json.loads(meta_path.read_text())
                entry = CacheEntry(**document)
                data_path = meta_path.with_suffix(".bin")
                if self._name(entry.key) != meta_path.stem:
                    continue
                found.append((data_path.stat().st_mtime, entry))
            except (OSError, ValueError, TypeError):
                continue
        for _mtime, entry in sorted(found, key=lambda item: item[0]):
            self._entries[entry.key] = entry
            self._size_bytes += entry.size_bytes

    def get(self, key: str) -> tuple[bytes, CacheEntry] | None:
        """Return the verified bytes and entry of ``key``, or None when absent or corrupt."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.stats.misses += 1
                return None
            data_path, _meta_path = self._paths(key)
            try:
                data = data_path.read_bytes()
            except OSError:
                data = None
            if data is None or hashlib.sha256(data).hexdigest() != entry.sha256:
                logger.warning("Cached copy of %s is missing or fails its SHA-256; dropping it", key)
                self.stats.corrupt += 1
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            with contextlib.suppress(OSError):
                os.utime(data_path)
            self.stats.hits += 1
            return data, entry

    def put(self, key: str, data: bytes, etag: str) -> None:
        """Cache ``data`` under ``key``; objects larger than the bound are not cached."""
        if len(data) > self.max_bytes:
            return
        entry = CacheEntry(key, len(data), hashlib.sha256(data).hexdigest(), etag)
        data_path, meta_path = self._paths(key)
        with self._lock:
            try:
                _write_atomic(data_path, data)
                _write_atomic(meta_path, json.dumps(entry.__dict__).encode())
            except OSError as exc:
                logger.warning("Could not cache %s in %s", key, self.folder, exc_info=exc)
                self._drop(key)
                return
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._size_bytes -= previous.size_bytes
            self._entries[key] = entry
            self._size_bytes += entry.size_bytes
            self._evict()

    def discard(self, key: str) -> None:
        """Remove ``key`` from the cache if present."""
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size_bytes -= entry.size_bytes
        for path in self._paths(key):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _evict(self) -> None:
        while self._size_bytes > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.stats.evictions += 1
            logger.debug("Evicted %s from the cache", oldest)


class CachedObjectStore:
    """An ObjectStore that serves repeated reads from a :class:`LocalObjectCache`.

    Args:
        store: the object store holding the cold tier.
        folder: local folder for cached objects.
        max_bytes: bound on the cached bytes (default 2 GiB).
        immutable_prefixes: keys that are never rewritten once created; served from
            the cache without asking the store.
        validated_prefixes: keys that may be rewritten; served from the cache only when
            a HEAD request returns the ETag recorded with the cached copy.

    Writes and deletes go to ``store`` first and then update the cache. Thread-safe
    when ``store`` is.
    """

    def __init__(
        self,
        store: ObjectStore,
        folder: str | os.PathLike[str],
        max_bytes: int = DEFAULT_CACHE_BYTES,
        *,
        immutable_prefixes: Sequence[str] = IMMUTABLE_PREFIXES,
        validated_prefixes: Sequence[str] = VALIDATED_PREFIXES,
    ):
        self.store = store
        self.cache = LocalObjectCache(folder, max_bytes, namespace=repr(store))
        self.immutable_prefixes = tuple(immutable_prefixes)
        self.validated_prefixes = tuple(validated_prefixes)

    def __repr__(self) -> str:
        return f"CachedObjectStore({self.store!r}, cache={str(self.cache.folder)!r})"

    def _cacheable(self, key: str) -> bool:
        return key.startswith(self.immutable_prefixes + self.validated_prefixes)

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        if not self._cacheable(key):
            return self.store.get(key, byte_range)
        validated = key.startswith(self.validated_prefixes)
        # The HEAD comes before any GET: if the key is rewritten in between, the cached
        # bytes are paired with the older ETag and the next read downloads them again.
        current_etag = self._current_etag(key) if validated else ""
        cached = self.cache.get(key)
        if cached is not None and validated and cached[1].etag != current_etag:
            self.cache.discard(key)
            cached = None
        if cached is None:
            if byte_range is not None and not validated:
                # A range read of an uncached segment fetches only that range.
                return self.store.get(key, byte_range)
            data = self.store.get(key)
            self.cache.put(key, data, current_etag)
        else:
            data = cached[0]
        if byte_range is None:
            return data
        start, end = byte_range
        return data[start:end]

    def _current_etag(self, key: str) -> str:
        try:
            return self.store.head(key).etag
        except ObjectNotFoundError:
            self.cache.discard(key)
            raise

    def put(
        self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None
    ) -> str:
        etag = self.store.put(key, data, if_none_match=if_none_match, if_match=if_match)
        if self._cacheable(key):
            self.cache.put(key, data, etag)
        return etag

    def head(self, key: str) -> ObjectInfo:
        return self.store.head(key)

    def list(self, prefix: str) -> list[ObjectInfo]:
        return self.store.list(prefix)

    def delete(self, keys: Sequence[str]) -> None:
        self.store.delete(keys)
        for key in keys:
            self.cache.discard(key)


def _write_atomic(path: Path, data: bytes) -> None:
    descriptor, staged = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(staged, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        raise
