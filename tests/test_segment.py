"""Segments are plain Parquet that any reader can open, and damage is detected."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tiering.errors import CorruptDataError, ValidationError
from tiering.records import Record
from tiering.segment import encode_payload, read_segment, sha256_hex, write_segment


def sample_records(n: int = 10, dim: int = 4) -> list[Record]:
    rng = np.random.default_rng(3)
    return [
        Record(i if i % 2 else f"s{i}", rng.random(dim, dtype=np.float32), {"n": i, "tags": ["x"]}, 100 + i)
        for i in range(n)
    ]


def test_roundtrip_is_exact():
    records = sample_records()
    data = write_segment(records, 4, demoted_at_ms=1_700_000_000_000)

    rows = read_segment(data, "k", sha256_hex(data))

    assert rows.ids == [r.id for r in records]
    assert np.array_equal(rows.vectors, np.stack([r.vector for r in records]))
    assert rows.payloads == [dict(r.payload) for r in records]
    assert rows.versions.tolist() == [r.version for r in records]


def test_plain_pyarrow_reads_documented_schema():
    data = write_segment(sample_records(), 4, demoted_at_ms=0)

    table = pq.read_table(io.BytesIO(data))

    assert table.schema.field("vector").type == pa.list_(pa.float32(), 4)
    assert table.schema.field("id").type == pa.string()
    assert table.schema.field("version").type == pa.int64()
    assert table.schema.field("demoted_at").type == pa.timestamp("ms", tz="UTC")
    assert table.column("id_is_int").to_pylist()[:2] == [False, True]
    assert pq.ParquetFile(io.BytesIO(data)).metadata.row_group(0).column(0).compression == "ZSTD"


def test_truncated_segment_fails_checksum():
    data = write_segment(sample_records(), 4, demoted_at_ms=0)

    with pytest.raises(CorruptDataError, match="SHA-256"):
        read_segment(data[:-10], "segments/x.parquet", sha256_hex(data))


def test_garbage_segment_is_unreadable():
    with pytest.raises(CorruptDataError, match="not a readable Parquet"):
        read_segment(b"PAR1 garbage", "segments/y.parquet", None)


def test_payload_must_be_json():
    with pytest.raises(ValidationError, match="JSON"):
        encode_payload({"x": {1, 2}}, "id")
