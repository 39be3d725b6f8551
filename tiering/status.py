"""A read-only summary of a cold tier: manifest, segments, saved index and pending moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tiering.coldindex import INDEX_META_KEY
from tiering.errors import ObjectNotFoundError, ValidationError
from tiering.manifest import MANIFEST_PREFIX, Manifest, manifest_key
from tiering.mover import JOURNAL_PREFIX
from tiering.objectstore import LocalFolderStore, ObjectStore


def read_status(location: ObjectStore | str | Path) -> dict[str, Any]:
    """Return a JSON-ready summary of the cold tier in ``location``.

    Raises:
        ValidationError: no manifest exists there.
        CorruptDataError: the newest manifest is unreadable.
    """
    store = location if not isinstance(location, str | Path) else LocalFolderStore(location)
    versions = sorted(
        int(info.key[len(MANIFEST_PREFIX) + 1 : -5])
        for info in store.list(MANIFEST_PREFIX)
        if info.key.endswith(".json")
    )
    if not versions:
        raise ValidationError(f"No cold tier manifest found in {store!r}. Check the path or prefix.")
    key = manifest_key(versions[-1])
    manifest = Manifest.from_json(store.get(key), key)
    try:
        index_meta = json.loads(store.get(INDEX_META_KEY))
    except ObjectNotFoundError:
        index_meta = None
    return {
        "manifest_version": manifest.version,
        "manifest_versions_kept": len(versions),
        "dim": manifest.dim,
        "metric": manifest.metric.value,
        "segments": len(manifest.segments),
        "segment_bytes": sum(entry.size_bytes for entry in manifest.segments),
        "live_rows": manifest.live_rows(),
        "tombstones": len(manifest.tombstones),
        "saved_index": index_meta,
        "pending_moves": len(store.list(JOURNAL_PREFIX)),
    }
