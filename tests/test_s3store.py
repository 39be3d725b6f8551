"""S3ObjectStore settings, secrets handling and single-writer emulation."""

from __future__ import annotations

import logging

import pytest
from servers import S3Endpoint, fault_proxy, moto_control, moto_server  # noqa: F401  (fixtures)

from tiering.errors import ConfigurationError, ObjectStoreError, PreconditionFailedError
from tiering.objectstore import content_etag
from tiering.s3store import S3Config, S3ObjectStore


def test_config_from_url() -> None:
    config = S3Config.from_url(
        "s3://cold-bucket/tenants/a?endpoint_url=http://127.0.0.1:9000&region=eu-west-1"
        "&storage_class=GLACIER_IR&single_writer=true&max_attempts=3&read_timeout_s=7.5"
    )

    assert config.bucket == "cold-bucket"
    assert config.prefix == "tenants/a/"
    assert config.endpoint_url == "http://127.0.0.1:9000"
    assert config.region == "eu-west-1"
    assert config.storage_class == "GLACIER_IR"
    assert config.single_writer is True
    assert config.max_attempts == 3
    assert config.read_timeout_s == 7.5


def test_config_from_url_without_prefix() -> None:
    config = S3Config.from_url("s3://cold-bucket")

    assert config.prefix == ""
    assert config.single_writer is False


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://bucket/prefix", "expected s3://"),
        ("s3:///prefix", "expected s3://"),
        ("s3://bucket?storage_class=COLD", "storage class"),
        ("s3://bucket?max_attempts=many", "not a number"),
        ("s3://bucket?max_attempts=0", "max_attempts"),
        ("s3://bucket?secret_access_key=x", "Unknown S3 setting"),
        ("s3://bucket?single_writer=maybe", "single_writer"),
        ("s3://bucket?multipart_part_bytes=1024", "5 MiB"),
    ],
)
def test_config_rejects_bad_url(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        S3Config.from_url(url)


def test_config_from_env() -> None:
    environ = {
        "TIERING_S3_URL": "s3://bucket/p",
        "TIERING_S3_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_REGION": "ap-south-1",
        "TIERING_S3_SINGLE_WRITER": "1",
    }

    config = S3Config.from_env(environ)

    assert (config.bucket, config.prefix, config.region) == ("bucket", "p/", "ap-south-1")
    assert config.endpoint_url == "http://127.0.0.1:1"
    assert config.single_writer is True


def test_config_from_env_requires_url() -> None:
    with pytest.raises(ConfigurationError, match="TIERING_S3_URL"):
        S3Config.from_env({})


def test_secrets_not_in_repr_or_logs(
    moto_server: S3Endpoint, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    bucket = moto_server.new_bucket()
    config = moto_server.config(bucket, secret_access_key="very-secret-value", session_token="tok-123")
    caplog.set_level(logging.DEBUG, logger="tiering")

    store = S3ObjectStore(config)
    store.put("segments/a", b"a")
    store.get("segments/a")

    text = repr(config) + repr(store) + caplog.text
    assert "very-secret-value" not in text
    assert "tok-123" not in text
    assert bucket in repr(store)


def test_single_writer_emulates_preconditions(moto_server: S3Endpoint) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    store = S3ObjectStore(moto_server.config(bucket, single_writer=True))

    etag = store.put("manifests/v1.json", b"one", if_none_match=True)
    with pytest.raises(PreconditionFailedError, match="emulated"):
        store.put("manifests/v1.json", b"two", if_none_match=True)
    with pytest.raises(PreconditionFailedError, match="emulated"):
        store.put("manifests/v1.json", b"two", if_match=content_etag(b"zzz"))
    store.put("manifests/v1.json", b"two", if_match=etag)

    assert store.get("manifests/v1.json") == b"two"


def test_put_rejects_both_preconditions(moto_server: S3Endpoint) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    store = S3ObjectStore(moto_server.config(bucket))

    with pytest.raises(Exception, match="not both"):
        store.put("manifests/v1.json", b"x", if_none_match=True, if_match="abc")


def test_probe_leaves_no_key(moto_server: S3Endpoint) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()

    S3ObjectStore(moto_server.config(bucket, single_writer=False, prefix="p"))

    assert moto_server.client().list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # type: ignore[attr-defined]


def test_store_from_url(moto_server: S3Endpoint) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    url = f"s3://{bucket}/tenant?endpoint_url={moto_server.endpoint_url}&max_attempts=2"

    store = S3ObjectStore.from_url(
        url,
        access_key_id=moto_server.access_key_id,
        secret_access_key=moto_server.secret_access_key,
    )
    store.put("segments/a", b"a")

    assert store.config.prefix == "tenant/"
    assert moto_server.client().get_object(Bucket=bucket, Key="tenant/segments/a")["Body"].read() == b"a"  # type: ignore[attr-defined]


def _botocore_errors() -> list[type[Exception]]:
    import botocore.exceptions

    found = []
    for value in vars(botocore.exceptions).values():
        if isinstance(value, type) and issubclass(value, botocore.exceptions.BotoCoreError):
            found.append(value)
    return found


@pytest.fixture(scope="module")
def offline_store() -> S3ObjectStore:
    """A store that never connects: its endpoint is a closed port and it skips the probe."""
    config = S3Config(
        bucket="tiering-unused",
        endpoint_url="http://127.0.0.1:9",
        access_key_id="testing",
        secret_access_key="testing",
    )
    return S3ObjectStore(config, writable=False)


@pytest.mark.parametrize("error_class", _botocore_errors(), ids=lambda cls: cls.__name__)
def test_every_botocore_error_translated(error_class: type[Exception], offline_store: S3ObjectStore) -> None:
    import inspect
    import re

    fields = set(re.findall(r"{(\w+)", getattr(error_class, "fmt", "")))
    for parameter in inspect.signature(error_class.__init__).parameters.values():
        if parameter.default is inspect.Parameter.empty and parameter.kind is parameter.POSITIONAL_OR_KEYWORD:
            fields.add(parameter.name)
    fields.discard("self")
    error = error_class(**{name: "x" for name in fields})

    def fail() -> None:
        raise error

    with pytest.raises(ObjectStoreError, match="get 'segments/k'") as raised:
        offline_store._call("get", "segments/k", fail)

    assert raised.value.__cause__ is error


def test_failed_multipart_upload_is_aborted(fault_proxy, moto_server: S3Endpoint) -> None:  # noqa: F811
    bucket = moto_server.new_bucket()
    part_bytes = 5 * 1024 * 1024
    config = moto_server.config(
        bucket,
        endpoint_url=fault_proxy.endpoint_url,
        multipart_threshold_bytes=part_bytes,
        multipart_part_bytes=part_bytes,
    )
    store = S3ObjectStore(config)
    fault_proxy.fail("PUT", "partNumber=2", status=503)

    with pytest.raises(ObjectStoreError, match=r"segments/big\.parquet"):
        store.put("segments/big.parquet", b"x" * (part_bytes * 2 + 10))

    client = moto_server.client()
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []  # type: ignore[attr-defined]
    assert store.list("segments/") == []
