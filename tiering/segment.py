"""Segments: immutable Parquet files of cold vectors.

Schema (readable by any Parquet reader, no vector-tiering needed):

============== ============================== ==============================================
column         type                           meaning
============== ============================== ==============================================
``id``         string                         the caller's id as text
``id_is_int``  bool                           true when the caller's id was an integer
``vector``     fixed_size_list<float32>[dim]  the vector (unit-normalised for cosine)
``payload``    string                         the payload as a JSON object
``version``    int64                          the record's version (grows with each write)
``demoted_at`` timestamp[ms, UTC]             when the record was demoted
============== ============================== ==============================================

Rows are numbered by position; the manifest maps position ``i`` of a segment to the
global row id ``first_row_id + i``. Files are written with zstd compression.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from tiering.errors import CorruptDataError, ValidationError
from tiering.records import Id, Record

ROW_GROUP_ROWS = 4096
SEGMENT_FORMAT = "tiering-segment-1"


def segment_schema(dim: int) -> pa.Schema:
    """Return the Arrow schema of a segment holding ``dim``-dimensional vectors."""
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("id_is_int", pa.bool_(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("payload", pa.string(), nullable=False),
            pa.field("version", pa.int64(), nullable=False),
            pa.field("demoted_at", pa.timestamp("ms", tz="UTC"), nullable=False),
        ],
        metadata={"format": SEGMENT_FORMAT, "dim": str(dim)},
    )


@dataclass(frozen=True)
class SegmentRows:
    """The decoded rows of one segment, in file order."""

    ids: list[Id]
    vectors: npt.NDArray[np.float32]
    payloads: list[dict[str, object]]
    versions: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.ids)

    def records(self) -> list[Record]:
        """Return the rows as records."""
        return [
            Record(id=i, vector=self.vectors[n], payload=self.payloads[n], version=int(self.versions[n]))
            for n, i in enumerate(self.ids)
        ]


def encode_payload(payload: object, record_id: Id) -> str:
    """Return the payload as compact JSON.

    Raises:
        ValidationError: the payload holds a value JSON cannot represent.
    """
    try:
        return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"Invalid payload for id {record_id!r}: {exc}. Payload values must be JSON "
            "(str, int, float, bool, None, lists and objects of those)."
        ) from exc


def write_segment(records: Sequence[Record], dim: int, demoted_at_ms: int) -> bytes:
    """Return the Parquet bytes of a segment holding ``records`` in order."""
    vectors = np.stack([np.asarray(r.vector, dtype=np.float32).reshape(dim) for r in records])
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.Table.from_arrays(
        [
            pa.array([str(r.id) for r in records], pa.string()),
            pa.array([isinstance(r.id, int) for r in records], pa.bool_()),
            pa.FixedSizeListArray.from_arrays(flat, dim),
            pa.array([encode_payload(dict(r.payload), r.id) for r in records], pa.string()),
            pa.array([r.version for r in records], pa.int64()),
            pa.array([demoted_at_ms] * len(records), pa.timestamp("ms", tz="UTC")),
        ],
        schema=segment_schema(dim),
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue()


def sha256_hex(data: bytes) -> str:
    """Return the SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def read_segment(
    data: bytes, key: str, expected_sha256: str | None, *, with_vectors: bool = True
) -> SegmentRows:
    """Decode a segment, checking its checksum first when one is given.

    Raises:
        CorruptDataError: the bytes fail the checksum or are not a readable segment.
    """
    if expected_sha256 is not None and sha256_hex(data) != expected_sha256:
        raise CorruptDataError(
            f"Segment {key!r} fails its SHA-256 check ({len(data)} bytes): it is truncated or "
            "corrupt. Restore it from a backup or a replica of the object store."
        )
    columns = ["id", "id_is_int", "payload", "version"] + (["vector"] if with_vectors else [])
    try:
        table = pq.read_table(io.BytesIO(data), columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise CorruptDataError(f"Segment {key!r} is not a readable Parquet file: {exc}") from exc
    ids: list[Id] = [
        int(text) if is_int else text
        for text, is_int in zip(
            table.column("id").to_pylist(), table.column("id_is_int").to_pylist(), strict=True
        )
    ]
    if with_vectors:
        column = table.column("vector").combine_chunks()
        dim = column.type.list_size
        vectors = column.values.to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)
    else:
        vectors = np.zeros((len(ids), 0), dtype=np.float32)
    return SegmentRows(
        ids=ids,
        vectors=vectors,
        payloads=[json.loads(text) for text in table.column("payload").to_pylist()],
        versions=np.asarray(table.column("version").to_numpy(), dtype=np.int64),
    )
