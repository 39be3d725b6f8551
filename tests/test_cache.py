"""The local object cache: hits, restarts, checksums, LRU bounds and rewritten keys."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from servers import S3Endpoint, moto_control, moto_server  # noqa: F401  (fixtures)

from tiering.cache import CachedObjectStore, LocalObjectCache
from tiering.errors import ConfigurationError, ObjectNotFoundError
from tiering.objectstore import LocalFolderStore
from tiering.s3store import S3ObjectStore


class CountingStore(LocalFolderStore):
    """A real folder store that counts the GET requests it serves."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.gets: collections.Counter[str] = collections.Counter()

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        self.gets[key] += 1
        return super().get(key, byte_range)


@pytest.fixture
def origin(tmp_path: Path) -> CountingStore:
    return CountingStore(tmp_path / "origin")


def test_second_read_is_a_hit(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("segments/a.parquet", b"segment-a")
    cached = CachedObjectStore(origin, tmp_path / "cache")

    first = cached.get("segments/a.parquet")
    second = cached.get("segments/a.parquet")

    assert first == second == b"segment-a"
    assert origin.gets["segments/a.parquet"] == 1
    assert cached.cache.stats.hits == 1


def test_restart_reuses_cache(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("segments/a.parquet", b"segment-a")
    CachedObjectStore(origin, tmp_path / "cache").get("segments/a.parquet")

    reopened = CachedObjectStore(origin, tmp_path / "cache")

    assert reopened.get("segments/a.parquet") == b"segment-a"
    assert origin.gets["segments/a.parquet"] == 1
    assert reopened.cache.size_bytes == len(b"segment-a")


def test_write_through_populates_cache(origin: CountingStore, tmp_path: Path) -> None:
    cached = CachedObjectStore(origin, tmp_path / "cache")

    cached.put("segments/new.parquet", b"fresh", if_none_match=True)

    assert cached.get("segments/new.parquet") == b"fresh"
    assert origin.gets["segments/new.parquet"] == 0


def test_corrupt_entry_is_dropped(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("segments/a.parquet", b"segment-a")
    cached = CachedObjectStore(origin, tmp_path / "cache")
    cached.get("segments/a.parquet")
    (entry_file,) = (tmp_path / "cache").glob("*.bin")
    entry_file.write_bytes(b"segment-X")

    data = cached.get("segments/a.parquet")

    assert data == b"segment-a"
    assert origin.gets["segments/a.parquet"] == 2
    assert cached.cache.stats.corrupt == 1
    assert entry_file.read_bytes() == b"segment-a"


def test_missing_entry_file_is_dropped(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("segments/a.parquet", b"segment-a")
    cached = CachedObjectStore(origin, tmp_path / "cache")
    cached.get("segments/a.parquet")
    for path in (tmp_path / "cache").glob("*.bin"):
        path.unlink()

    assert cached.get("segments/a.parquet") == b"segment-a"
    assert origin.gets["segments/a.parquet"] == 2


def test_lru_eviction_keeps_bound(origin: CountingStore, tmp_path: Path) -> None:
    for name in "abcd":
        origin.put(f"segments/{name}", name.encode() * 1000)
    cached = CachedObjectStore(origin, tmp_path / "cache", max_bytes=3000)

    cached.get("segments/a")
    cached.get("segments/b")
    cached.get("segments/c")
    cached.get("segments/a")  # a is now the most recently used
    cached.get("segments/d")  # evicts b

    assert cached.cache.size_bytes == 3000
    assert "segments/b" not in cached.cache
    assert "segments/a" in cached.cache
    assert cached.cache.stats.evictions == 1
    assert len(list((tmp_path / "cache").glob("*.bin"))) == 3


def test_oversize_object_not_cached(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("segments/big", b"x" * 5000)
    cached = CachedObjectStore(origin, tmp_path / "cache", max_bytes=1000)

    cached.get("segments/big")
    cached.get("segments/big")

    assert origin.gets["segments/big"] == 2
    assert len(cached.cache) == 0


def test_rewritten_index_is_downloaded_again(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("index/cold.faiss", b"index-v1")
    cached = CachedObjectStore(origin, tmp_path / "cache")
    assert cached.get("index/cold.faiss") == b"index-v1"
    assert cached.get("index/cold.faiss") == b"index-v1"

    origin.put("index/cold.faiss", b"index-v2")  # another writer, bypassing this cache

    assert cached.get("index/cold.faiss") == b"index-v2"
    assert origin.gets["index/cold.faiss"] == 2


def test_mutable_keys_bypass_cache(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("manifests/v1.json", b"{}")
    cached = CachedObjectStore(origin, tmp_path / "cache")

    cached.get("manifests/v1.json")
    cached.get("manifests/v1.json")

    assert origin.gets["manifests/v1.json"] == 2
    assert len(cached.cache) == 0


def test_byte_ranges(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("segments/d", b"0123456789")
    cached = CachedObjectStore(origin, tmp_path / "cache")

    uncached_range = cached.get("segments/d", (2, 5))
    cached.get("segments/d")
    cached_range = cached.get("segments/d", (7, 20))

    assert uncached_range == b"234"
    assert cached_range == b"789"
    assert origin.gets["segments/d"] == 2


def test_delete_discards_entry(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("segments/a", b"a")
    cached = CachedObjectStore(origin, tmp_path / "cache")
    cached.get("segments/a")

    cached.delete(["segments/a"])

    assert "segments/a" not in cached.cache
    with pytest.raises(ObjectNotFoundError):
        cached.get("segments/a")


def test_deleted_index_not_served(origin: CountingStore, tmp_path: Path) -> None:
    origin.put("index/cold.faiss", b"index")
    cached = CachedObjectStore(origin, tmp_path / "cache")
    cached.get("index/cold.faiss")

    origin.delete(["index/cold.faiss"])

    with pytest.raises(ObjectNotFoundError):
        cached.get("index/cold.faiss")


def test_namespaces_separate_stores(tmp_path: Path) -> None:
    first = LocalFolderStore(tmp_path / "one")
    second = LocalFolderStore(tmp_path / "two")
    first.put("segments/s", b"first")
    second.put("segments/s", b"second")

    assert CachedObjectStore(first, tmp_path / "cache").get("segments/s") == b"first"
    assert CachedObjectStore(second, tmp_path / "cache").get("segments/s") == b"second"


def test_invalid_size_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cache size"):
        LocalObjectCache(tmp_path, 0)


def test_cache_over_moto(moto_server: S3Endpoint, tmp_path: Path) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    store = S3ObjectStore(moto_server.config(bucket))
    store.put("segments/s.parquet", b"remote-segment")
    store.put("index/cold.faiss", b"remote-index")
    cached = CachedObjectStore(store, tmp_path / "cache")

    cached.get("segments/s.parquet")
    cached.get("index/cold.faiss")
    reopened = CachedObjectStore(store, tmp_path / "cache")

    assert reopened.get("segments/s.parquet") == b"remote-segment"
    assert reopened.get("index/cold.faiss") == b"remote-index"
    assert reopened.cache.stats.hits == 2
