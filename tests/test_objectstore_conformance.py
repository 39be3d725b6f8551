"""One conformance suite for every object store: a local folder, S3 on moto, S3 on Swift.

Swift's S3 layer rejects conditional PUTs (501 Not Implemented), so its store runs in
single-writer mode, where the preconditions are emulated with HEAD before PUT; the
Swift-only tests at the end check the refusal itself.
"""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Iterator

import pytest
from servers import (  # noqa: F401  (fixtures)
    MotoControl,
    S3Endpoint,
    free_port,
    moto_control,
    moto_server,
    swift_server,
)

from tiering.errors import (
    ConditionalWriteUnsupportedError,
    ObjectNotFoundError,
    ObjectStoreError,
    PreconditionFailedError,
)
from tiering.objectstore import LocalFolderStore, ObjectStore, content_etag
from tiering.s3store import ObjectStoreUnavailableError, S3Config, S3ObjectStore

STORE_KINDS = ["local", "moto", "swift"]


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[ObjectStore]:
    if request.param == "local":
        yield LocalFolderStore(tmp_path / "cold")
        return
    endpoint: S3Endpoint = request.getfixturevalue(f"{request.param}_server")
    bucket = endpoint.new_bucket()
    yield S3ObjectStore(endpoint.config(bucket, prefix="tenant-a"))


def test_store_implements_protocol(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_put_get_roundtrip(store: ObjectStore) -> None:
    data = bytes(range(256)) * 40

    etag = store.put("segments/a.parquet", data)

    assert store.get("segments/a.parquet") == data
    assert etag == content_etag(data)
    assert store.head("segments/a.parquet").etag == etag
    assert store.head("segments/a.parquet").size_bytes == len(data)


def test_put_overwrites_without_precondition(store: ObjectStore) -> None:
    store.put("index/cold.json", b"first")
    store.put("index/cold.json", b"second")

    assert store.get("index/cold.json") == b"second"


def test_empty_object(store: ObjectStore) -> None:
    store.put("manifests/empty", b"")

    assert store.get("manifests/empty") == b""
    assert store.head("manifests/empty").size_bytes == 0


@pytest.mark.parametrize(
    ("byte_range", "expected"),
    [((0, 4), b"0123"), ((3, 7), b"3456"), ((9, 10), b"9"), ((8, 20), b"89"), ((4, 4), b""),
     ((10, 12), b""), ((15, 30), b"")],
)
def test_get_byte_range(store: ObjectStore, byte_range: tuple[int, int], expected: bytes) -> None:
    store.put("segments/digits", b"0123456789")

    assert store.get("segments/digits", byte_range) == expected


def test_get_missing_key_names_key(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError, match=re.escape("segments/missing.parquet")):
        store.get("segments/missing.parquet")
    with pytest.raises(ObjectNotFoundError, match=re.escape("segments/missing.parquet")):
        store.get("segments/missing.parquet", (0, 10))


def test_head_missing_key(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError, match=re.escape("manifests/v9.json")):
        store.head("manifests/v9.json")


def test_list_by_prefix_sorted(store: ObjectStore) -> None:
    for key in ("segments/b", "segments/a", "manifests/v2", "manifests/v1", "index/cold.faiss"):
        store.put(key, key.encode())

    segments = store.list("segments/")
    manifests = store.list("manifests/")

    assert [info.key for info in segments] == ["segments/a", "segments/b"]
    assert [info.key for info in manifests] == ["manifests/v1", "manifests/v2"]
    assert [info.size_bytes for info in segments] == [10, 10]
    assert all(info.last_modified_s > time.time() - 3600 for info in segments)
    assert store.list("nothing/") == []
    assert len(store.list("")) == 5


def test_delete_existing_and_missing(store: ObjectStore) -> None:
    store.put("segments/a", b"a")
    store.put("segments/b", b"b")

    store.delete(["segments/a", "segments/never-written"])
    store.delete([])

    assert [info.key for info in store.list("segments/")] == ["segments/b"]
    with pytest.raises(ObjectNotFoundError):
        store.get("segments/a")


def test_if_none_match_creates_once(store: ObjectStore) -> None:
    store.put("manifests/v1.json", b"first", if_none_match=True)

    with pytest.raises(PreconditionFailedError, match=re.escape("manifests/v1.json")):
        store.put("manifests/v1.json", b"second", if_none_match=True)

    assert store.get("manifests/v1.json") == b"first"


def test_if_match_replaces_only_matching(store: ObjectStore) -> None:
    etag = store.put("index/cold.json", b"first")

    with pytest.raises(PreconditionFailedError, match=re.escape("index/cold.json")):
        store.put("index/cold.json", b"other", if_match=content_etag(b"stale"))
    new_etag = store.put("index/cold.json", b"second", if_match=etag)

    assert store.get("index/cold.json") == b"second"
    assert new_etag == content_etag(b"second")
    with pytest.raises(PreconditionFailedError):
        store.put("index/cold.json", b"third", if_match=etag)


def test_if_match_missing_key_fails(store: ObjectStore) -> None:
    with pytest.raises(PreconditionFailedError):
        store.put("index/absent.json", b"x", if_match=content_etag(b"x"))
    with pytest.raises(ObjectNotFoundError):
        store.head("index/absent.json")


def test_many_keys_list_and_delete(store: ObjectStore, request: pytest.FixtureRequest) -> None:
    # More than one page of ListObjectsV2 (1000 keys) and one DeleteObjects batch.
    count = 1100 if request.node.callspec.params["store"] != "swift" else 120
    keys = [f"segments/{n:05d}" for n in range(count)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda key: store.put(key, b"x"), keys))

    listed = store.list("segments/")
    store.delete(keys)

    assert [info.key for info in listed] == keys
    assert store.list("segments/") == []


# S3 only ----------------------------------------------------------------------------


@pytest.fixture(params=["moto", "swift"])
def endpoint(request: pytest.FixtureRequest) -> S3Endpoint:
    return request.getfixturevalue(f"{request.param}_server")


def test_prefixes_isolate_tenants(endpoint: S3Endpoint) -> None:
    bucket = endpoint.new_bucket()
    first = S3ObjectStore(endpoint.config(bucket, prefix="a"))
    second = S3ObjectStore(endpoint.config(bucket, prefix="a-b"))

    first.put("segments/x", b"1")
    second.put("segments/x", b"2")

    assert [info.key for info in first.list("")] == ["segments/x"]
    assert first.get("segments/x") == b"1"
    assert second.get("segments/x") == b"2"


def test_multipart_upload_roundtrip(endpoint: S3Endpoint) -> None:
    bucket = endpoint.new_bucket()
    part_bytes = 5 * 1024 * 1024
    store = S3ObjectStore(
        endpoint.config(bucket, multipart_threshold_bytes=part_bytes, multipart_part_bytes=part_bytes)
    )
    data = bytes(range(256)) * (part_bytes * 2 // 256) + b"tail"

    etag = store.put("segments/big.parquet", data, if_none_match=True)

    assert store.get("segments/big.parquet") == data
    assert store.get("segments/big.parquet", (part_bytes - 2, part_bytes + 2)) == data[
        part_bytes - 2 : part_bytes + 2
    ]
    assert store.head("segments/big.parquet").etag == etag
    assert etag.endswith("-3")
    with pytest.raises(PreconditionFailedError):
        store.put("segments/big.parquet", data, if_none_match=True)


def test_missing_bucket_is_clear(endpoint: S3Endpoint) -> None:
    store = S3ObjectStore(endpoint.config("tiering-no-such-bucket"), writable=False)

    with pytest.raises(ObjectStoreError, match="tiering-no-such-bucket") as raised:
        store.put("manifests/v1.json", b"{}")

    assert "does not exist" in str(raised.value)
    assert not isinstance(raised.value, ObjectNotFoundError)


def test_wrong_secret_is_access_denied(endpoint: S3Endpoint) -> None:
    if endpoint.name == "moto":
        pytest.skip("moto accepts any credentials")
    bucket = endpoint.new_bucket()
    store = S3ObjectStore(endpoint.config(bucket, secret_access_key="wrong"), writable=False)

    with pytest.raises(ObjectStoreError, match="access denied") as raised:
        store.get("manifests/v1.json")

    assert "wrong" not in str(raised.value)


def test_unreachable_endpoint_names_operation() -> None:
    config = S3Config(
        bucket="tiering-any",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        access_key_id="testing",
        secret_access_key="testing",
        connect_timeout_s=1.0,
        read_timeout_s=2.0,
        max_attempts=2,
    )
    started = time.monotonic()

    with pytest.raises(ObjectStoreUnavailableError) as raised:
        S3ObjectStore(config, writable=False).head("manifests/v7.json")

    message = str(raised.value)
    assert "head 'manifests/v7.json'" in message
    assert config.endpoint_url in message
    assert time.monotonic() - started < 10


# moto only ---------------------------------------------------------------------------


def test_server_stopped_mid_test(moto_control: MotoControl) -> None:  # noqa: F811
    moto_control.start()
    endpoint = moto_control.endpoint
    bucket = endpoint.new_bucket()
    store = S3ObjectStore(endpoint.config(bucket))
    store.put("segments/s1.parquet", b"segment")

    moto_control.stop()
    started = time.monotonic()
    try:
        with pytest.raises(ObjectStoreUnavailableError) as raised:
            store.get("segments/s1.parquet")
        elapsed_s = time.monotonic() - started
        with pytest.raises(ObjectStoreUnavailableError, match=re.escape("put 'manifests/v1.json'")):
            store.put("manifests/v1.json", b"{}", if_none_match=True)
    finally:
        moto_control.start()

    assert "get 'segments/s1.parquet'" in str(raised.value)
    assert bucket in str(raised.value)
    assert endpoint.endpoint_url in str(raised.value)
    assert elapsed_s < 10
    assert store.get("segments/s1.parquet") == b"segment"


def test_storage_class_only_for_segments(moto_server: S3Endpoint) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    store = S3ObjectStore(moto_server.config(bucket, storage_class="STANDARD_IA"))
    client = moto_server.client()

    store.put("segments/s.parquet", b"s")
    store.put("manifests/v1.json", b"m", if_none_match=True)

    assert client.head_object(Bucket=bucket, Key="segments/s.parquet")["StorageClass"] == "STANDARD_IA"  # type: ignore[attr-defined]
    assert "StorageClass" not in client.head_object(Bucket=bucket, Key="manifests/v1.json")  # type: ignore[attr-defined]


def test_moto_probe_accepts_conditional_writes(moto_server: S3Endpoint) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()

    S3ObjectStore(moto_server.config(bucket, single_writer=False))

    assert S3ObjectStore(moto_server.config(bucket), writable=False).list("") == []


# Swift only --------------------------------------------------------------------------


def test_swift_refuses_conditional_write_mode(swift_server: S3Endpoint) -> None:  # noqa: F811
    bucket = swift_server.new_bucket()

    with pytest.raises(ConditionalWriteUnsupportedError, match="single_writer=True"):
        S3ObjectStore(swift_server.config(bucket, single_writer=False))

    assert S3ObjectStore(swift_server.config(bucket), writable=False).list("") == []


def test_swift_conditional_put_is_501(swift_server: S3Endpoint) -> None:  # noqa: F811
    bucket = swift_server.new_bucket()
    store = S3ObjectStore(swift_server.config(bucket, single_writer=False), writable=False)

    with pytest.raises(ConditionalWriteUnsupportedError, match=re.escape("manifests/v1.json")):
        store.put("manifests/v1.json", b"{}", if_none_match=True)
    with pytest.raises(ObjectNotFoundError):
        store.head("manifests/v1.json")
