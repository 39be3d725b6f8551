"""The object store interface and its local-folder implementation.

An object store keeps immutable blobs under string keys (``segments/...``,
``manifests/...``). The cold tier needs five operations: get (whole or a byte
range), put with a precondition, head, list by prefix, and delete. The
preconditions carry the manifest's optimistic concurrency:

* ``put(key, data, if_none_match=True)`` creates the key only if it does not exist;
* ``put(key, data, if_match=etag)`` replaces the key only if its ETag is ``etag``.

A losing conditional write raises :class:`PreconditionFailedError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from tiering.errors import (
    ConfigurationError,
    ObjectNotFoundError,
    ObjectStoreError,
    PreconditionFailedError,
)


@dataclass(frozen=True)
class ObjectInfo:
    """Metadata of one stored object."""

    key: str
    size_bytes: int
    etag: str
    last_modified_s: float


@runtime_checkable
class ObjectStore(Protocol):
    """Blob storage under string keys. Implementations are thread-safe."""

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Return the object's bytes, or bytes ``[start, end)`` of it.

        Raises ObjectNotFoundError, ObjectStoreError.
        """
        ...

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Store ``data`` under ``key`` and return its ETag.

        Raises PreconditionFailedError when a precondition does not hold, ObjectStoreError.
        """
        ...

    def head(self, key: str) -> ObjectInfo:
        """Return the object's metadata. Raises ObjectNotFoundError, ObjectStoreError."""
        ...

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Return every object whose key starts with ``prefix``, sorted by key."""
        ...

    def delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys``; missing keys are ignored. Raises ObjectStoreError."""
        ...


def content_etag(data: bytes) -> str:
    """Return the MD5 hex digest that S3 uses as the ETag of a single-part upload."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class LocalFolderStore:
    """An object store in a local folder; keys map to relative file paths.

    Writes go to a temporary file that is fsynced and then linked into place, so a
    reader never sees a partial object. ``if_none_match`` uses ``os.link``, which
    fails when the target exists; ``if_match`` compares ETags under a file lock, so
    several processes on one host may share the folder.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).resolve()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"Cannot create the cold tier folder {self.root}: {exc}. Choose a writable path."
            ) from exc
        self._lock_path = self.root / ".lock"

    def __repr__(self) -> str:
        return f"LocalFolderStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/") or key.startswith("."):
            raise ObjectStoreError(f"Invalid object key {key!r}: use a relative path without '..'.")
        return self.root / key

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                if byte_range is None:
                    return handle.read()
                start, end = byte_range
                handle.seek(start)
                return handle.read(max(0, end - start))
        except FileNotFoundError:
            raise ObjectNotFoundError(f"get {key!r} failed: object not found in {self.root}.") from None
        except OSError as exc:
            raise ObjectStoreError(f"get {key!r} failed in {self.root}: {exc}.") from exc

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with self._staged(path, data) as staged:
                if if_none_match:
                    try:
                        os.link(staged, path)
                    except FileExistsError:
                        raise PreconditionFailedError(
                            f"put {key!r} failed: the object already exists (If-None-Match)."
                        ) from None
                elif if_match is not None:
                    with self._exclusive():
                        current = self._etag_or_none(path)
                        if current != if_match:
                            raise PreconditionFailedError(
                                f"put {key!r} failed: ETag is {current!r}, expected {if_match!r} (If-Match)."
                            )
                        os.replace(staged, path)
                else:
                    os.replace(staged, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            raise ObjectStoreError(f"put {key!r} failed in {self.root}: {exc}.") from exc
        return content_etag(data)

    @contextlib.contextmanager
    def _staged(self, path: Path, data: bytes) -> Iterator[str]:
        descriptor, staged = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            yield staged
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(staged)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _etag_or_none(self, path: Path) -> str | None:
        try:
            return content_etag(path.read_bytes())
        except FileNotFoundError:
            return None

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            stat = path.stat()
            return ObjectInfo(key, stat.st_size, content_etag(path.read_bytes()), stat.st_mtime)
        except FileNotFoundError:
            raise ObjectNotFoundError(f"head {key!r} failed: object not found in {self.root}.") from None
        except OSError as exc:
            raise ObjectStoreError(f"head {key!r} failed in {self.root}: {exc}.") from exc

    def list(self, prefix: str) -> list[ObjectInfo]:
        found = []
        try:
            for dirpath, _dirs, files in os.walk(self.root):
                for name in files:
                    if name.startswith("."):
                        continue
                    path = Path(dirpath) / name
                    key = path.relative_to(self.root).as_posix()
                    if key.startswith(prefix):
                        stat = path.stat()
                        # NOTE: the ETag is left empty here to keep listing cheap; call head for it.
                        found.append(ObjectInfo(key, stat.st_size, "", stat.st_mtime))
        except OSError as exc:
            raise ObjectStoreError(f"list {prefix!r} failed in {self.root}: {exc}.") from exc
        return sorted(found, key=lambda info: info.key)

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            try:
                self._path(key).unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ObjectStoreError(f"delete {key!r} failed in {self.root}: {exc}.") from exc


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
