"""Garbage collection of the cold tier: old manifest versions and unreferenced segments.

Segments are immutable and a manifest version lists the segments that are live in it.
A segment stops being needed when every row in it has been promoted or deleted (the
manifest then drops it) or when a crashed demotion uploaded it but never committed it.
:func:`collect_garbage` keeps the newest ``keep_versions`` manifest versions, expires
older ones, and deletes segments that no kept version references. Two rules make it
safe to run beside writers:

* A segment is deleted only when it is older than ``grace_period_s``. A demotion in
  progress uploads its segment before it commits the manifest version that lists it,
  and a rebase of that commit may take a few retries. The grace period must exceed
  the longest such move; the default of one hour is far beyond a normal move.
* A manifest version is expired only when it is older than ``grace_period_s`` too.
  A writer creates version ``latest + 1`` with If-None-Match. If GC deleted versions
  that a slow writer still takes for the latest, that writer's create could succeed on
  a freed key, and its commit would be hidden below newer versions.

Segments named by an unfinished move's journal entry are kept as well: recovery on
the next open decides their fate. Manifest versions are deleted before segments, so
a crash part way never leaves a kept manifest pointing at a missing segment.
GC never deletes the newest manifest version.

A reader that loaded an old version keeps working as long as that version is among
the kept ones; readers older than ``keep_versions`` commits must reload.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from tiering.coldtier import SEGMENT_PREFIX
from tiering.errors import ConfigurationError, ObjectNotFoundError
from tiering.manifest import MANIFEST_PREFIX, Manifest, manifest_key
from tiering.mover import JOURNAL_PREFIX
from tiering.objectstore import ObjectInfo, ObjectStore

logger = logging.getLogger(__name__)

# Keys the S3 store's conditional-write probe creates and deletes again; a crash in
# between leaves one behind (tiering.s3store.PROBE_PREFIX, not imported to keep boto3
# optional).
PROBE_PREFIX = "_probe/"
DEFAULT_KEEP_VERSIONS = 10
DEFAULT_GRACE_PERIOD_S = 3600.0


@dataclass(frozen=True)
class GcReport:
    """Result of one garbage collection: what it found and, unless ``dry_run``, deleted."""

    kept_versions: tuple[int, ...]
    expired_manifests: tuple[str, ...]
    deleted_segments: tuple[str, ...]
    young_segments: tuple[str, ...]
    """Unreferenced segments left alone because they are within the grace period."""

    deleted_bytes: int
    dry_run: bool
    deleted_probes: tuple[str, ...] = ()


def collect_garbage(
    store: ObjectStore,
    *,
    keep_versions: int = DEFAULT_KEEP_VERSIONS,
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S,
    now_s: float | None = None,
    dry_run: bool = False,
) -> GcReport:
    """Expire old manifest versions and delete segments no kept version references.

    Args:
        store: the cold tier's object store.
        keep_versions: newest manifest versions to keep, at least 1.
        grace_period_s: minimum age in seconds of anything deleted (see module docstring).
        now_s: current time in seconds since the epoch, compared with object
            modification times; defaults to the local clock.
        dry_run: report what would be deleted without deleting it.

    Returns the report. Idempotent; safe to run while writers demote and promote.

    Raises:
        ConfigurationError: ``keep_versions`` < 1 or ``grace_period_s`` < 0.
        CorruptDataError: a kept manifest is unreadable; nothing is deleted.
        ObjectStoreError: the store failed; a retry continues where this stopped.
    """
    if keep_versions < 1:
        raise ConfigurationError(f"keep_versions is {keep_versions}; keep at least 1 version.")
    if grace_period_s < 0:
        raise ConfigurationError(f"grace_period_s is {grace_period_s}; use 0 or more seconds.")
    now_s = time.time() if now_s is None else now_s

    manifests = _manifest_objects(store)
    versions = sorted(manifests)
    kept = versions[-keep_versions:]
    referenced = _referenced_segments(store, kept)
    journaled = _journaled_segments(store)

    expired = [
        manifests[version]
        for version in versions[: len(versions) - len(kept)]
        if now_s - manifests[version].last_modified_s >= grace_period_s
    ]
    deletable: list[ObjectInfo] = []
    young: list[str] = []
    for info in store.list(SEGMENT_PREFIX):
        if info.key in referenced or (journaled is None or info.key in journaled):
            continue
        if now_s - info.last_modified_s >= grace_period_s:
            deletable.append(info)
        else:
            young.append(info.key)

    probes = [
        info for info in store.list(PROBE_PREFIX) if now_s - info.last_modified_s >= grace_period_s
    ]

    if not dry_run:
        # Manifests first: a crash after this line leaves only orphan segments behind.
        store.delete([info.key for info in expired])
        store.delete([info.key for info in deletable])
        store.delete([info.key for info in probes])
    report = GcReport(
        kept_versions=tuple(kept),
        expired_manifests=tuple(info.key for info in expired),
        deleted_segments=tuple(info.key for info in deletable),
        young_segments=tuple(young),
        deleted_bytes=sum(info.size_bytes for info in (*expired, *deletable)),
        dry_run=dry_run,
        deleted_probes=tuple(info.key for info in probes),
    )
    logger.info(
        "Garbage collection%s: kept %d manifest versions, expired %d, deleted %d segments "
        "(%d bytes), left %d young unreferenced segments",
        " (dry run)" if dry_run else "",
        len(kept), len(expired), len(deletable), report.deleted_bytes, len(young),
    )
    return report


def _manifest_objects(store: ObjectStore) -> dict[int, ObjectInfo]:
    found = {}
    for info in store.list(MANIFEST_PREFIX):
        name = info.key[len(MANIFEST_PREFIX) :]
        if name.startswith("v") and name.endswith(".json") and name[1:-5].isdigit():
            found[int(name[1:-5])] = info
    return found


def _referenced_segments(store: ObjectStore, versions: list[int]) -> set[str]:
    referenced: set[str] = set()
    for version in versions:
        key = manifest_key(version)
        try:
            data = store.get(key)
        except ObjectNotFoundError:
            # Expired by a concurrent collection between the listing and this read.
            continue
        manifest = Manifest.from_json(data, key)
        referenced.update(entry.key for entry in manifest.segments)
    return referenced


def _journaled_segments(store: ObjectStore) -> set[str] | None:
    """Return segment keys named by unfinished moves, or None if a journal is unreadable."""
    keys: set[str] = set()
    for info in store.list(JOURNAL_PREFIX):
        try:
            document = json.loads(store.get(info.key))
        except ObjectNotFoundError:
            continue
        except ValueError:
            logger.warning("Journal entry %s is unreadable; keeping every segment", info.key)
            return None
        segment_key = document.get("segment_key") if isinstance(document, dict) else None
        if segment_key:
            keys.add(str(segment_key))
    return keys
