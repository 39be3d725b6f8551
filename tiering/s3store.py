"""An object store on S3 or any S3-compatible service, through boto3.

:class:`S3ObjectStore` implements :class:`tiering.objectstore.ObjectStore` on one
bucket under an optional key prefix. Every call has a connect and a read timeout
and a bounded number of retries (botocore's "standard" retry mode, with
exponential backoff and jitter). Every botocore error is translated at this
boundary into :mod:`tiering.errors`. Messages name the operation, the bucket and
the key, and also the endpoint when it cannot be reached. Credentials come from
boto3's standard chain (environment, shared files, instance roles) or from
:class:`S3Config`, and are never logged or shown in a ``repr``.

Conditional writes carry the manifest's optimistic concurrency:
``put(if_none_match=True)`` sends ``If-None-Match: *`` and ``put(if_match=etag)``
sends ``If-Match``. Some S3-compatible services reject or ignore these headers
(OpenStack Swift's s3api returns 501 Not Implemented). A store opened for
writing probes the service once and raises
:class:`~tiering.errors.ConditionalWriteUnsupportedError` when the headers are
not honoured, unless ``single_writer=True``. In single-writer mode the
preconditions are emulated with a HEAD request before the PUT. That emulation is
not atomic, so two writers on one prefix can then overwrite each other's
manifest: use it only where one process writes the cold tier.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import boto3
import botocore.exceptions
from botocore.config import Config

from tiering.errors import (
    ConditionalWriteUnsupportedError,
    ConfigurationError,
    ObjectNotFoundError,
    ObjectStoreError,
    ObjectStoreUnavailableError,
    PreconditionFailedError,
)
from tiering.objectstore import ObjectInfo

logger = logging.getLogger(__name__)

STORAGE_CLASSES = ("STANDARD", "STANDARD_IA", "GLACIER_IR", "INTELLIGENT_TIERING")
SEGMENT_PREFIX = "segments/"
DELETE_BATCH_KEYS = 1000
PROBE_PREFIX = "_probe/"

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}
_PRECONDITION_CODES = {"412", "409", "PreconditionFailed", "ConditionalRequestConflict"}
_UNAVAILABLE_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
)

_CONDITIONAL_WRITE_ADVICE = (
    "Use an object store that supports conditional writes (AWS S3, MinIO, moto), or set "
    "single_writer=True if exactly one process ever writes this cold tier (two writers "
    "could then overwrite each other's manifest)."
)

T = TypeVar("T")


@dataclass(frozen=True)
class S3Config:
    """Location of the bucket that contains the cold tier, and how to reach it.

    Attributes:
        bucket: bucket name; it must exist.
        prefix: key prefix inside the bucket, for example ``"tiering/products/"``; a
            trailing slash is added when missing.
        endpoint_url: URL of an S3-compatible service; None means AWS S3.
        region: signing region.
        access_key_id, secret_access_key, session_token: explicit credentials; None
            means boto3's standard chain. Never logged or shown in ``repr``.
        storage_class: storage class of segment objects (keys under ``segments/``);
            manifests and indexes always use STANDARD.
        multipart_threshold_bytes: objects at least this large are uploaded in parts.
        multipart_part_bytes: size of each part (S3's minimum is 5 MiB).
        connect_timeout_s, read_timeout_s: per-request socket timeouts in seconds.
        max_attempts: total attempts per request, first try included.
        addressing_style: ``"path"`` (the default; works with every S3-compatible
            service), ``"virtual"`` or ``"auto"``.
        single_writer: emulate conditional writes with HEAD then PUT; see the module
            docstring for the risk.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    storage_class: str = "STANDARD"
    multipart_threshold_bytes: int = 64 * 1024 * 1024
    multipart_part_bytes: int = 16 * 1024 * 1024
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    max_attempts: int = 4
    addressing_style: str = "path"
    single_writer: bool = False

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ConfigurationError("The S3 bucket name is empty. Set S3Config.bucket.")
        if self.prefix and not self.prefix.endswith("/"):
            object.__setattr__(self, "prefix", self.prefix + "/")
        if self.prefix.startswith("/"):
            raise ConfigurationError(
                f"The S3 key prefix {self.prefix!r} starts with '/'. Remove the leading slash."
            )
        if self.storage_class not in STORAGE_CLASSES:
            raise ConfigurationError(
                f"Unknown S3 storage class {self.storage_class!r}. Use one of {', '.join(STORAGE_CLASSES)}."
            )
        if self.multipart_part_bytes < 5 * 1024 * 1024:
            raise ConfigurationError(
                f"multipart_part_bytes is {self.multipart_part_bytes}; S3 requires parts of at "
                "least 5 MiB (5242880 bytes)."
            )
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts is {self.max_attempts}; use 1 or more.")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ConfigurationError(
                f"S3 timeouts must be positive, got connect {self.connect_timeout_s} s and "
                f"read {self.read_timeout_s} s."
            )
        if self.addressing_style not in ("path", "virtual", "auto"):
            raise ConfigurationError(
                f"addressing_style is {self.addressing_style!r}; use path, virtual or auto."
            )

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> S3Config:
        """Parse ``s3://bucket/prefix?endpoint_url=...&region=...&storage_class=...``.

        Query parameters set the same-named fields (``single_writer=true`` is a
        boolean, the sizes, timeouts and attempts are numbers). Credentials are never
        read from the URL; keyword ``overrides`` win over the URL.

        Raises:
            ConfigurationError: the URL is not an ``s3://`` URL or names an unknown field.
        """
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ConfigurationError(f"Invalid cold tier URL {url!r}: expected s3://bucket/optional/prefix.")
        settings: dict[str, Any] = {"bucket": parsed.netloc, "prefix": parsed.path.lstrip("/")}
        for name, values in parse_qs(parsed.query).items():
            settings[name] = _parse_setting(name, values[-1])
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> S3Config:
        """Build a configuration from environment variables.

        ``TIERING_S3_URL`` (required, as in :meth:`from_url`), and optionally
        ``TIERING_S3_ENDPOINT_URL``, ``TIERING_S3_REGION`` (else ``AWS_REGION``),
        ``TIERING_S3_STORAGE_CLASS`` and ``TIERING_S3_SINGLE_WRITER``. Credentials stay
        with boto3's chain (``AWS_ACCESS_KEY_ID`` and friends).

        Raises:
            ConfigurationError: ``TIERING_S3_URL`` is missing or invalid.
        """
        env = os.environ if environ is None else environ
        url = env.get("TIERING_S3_URL")
        if not url:
            raise ConfigurationError(
                "TIERING_S3_URL is not set. Set it to s3://bucket/prefix to use S3 for the cold tier."
            )
        overrides: dict[str, Any] = {}
        for variable, name in (
            ("TIERING_S3_ENDPOINT_URL", "endpoint_url"),
            ("TIERING_S3_REGION", "region"),
            ("TIERING_S3_STORAGE_CLASS", "storage_class"),
            ("TIERING_S3_SINGLE_WRITER", "single_writer"),
        ):
            if env.get(variable):
                overrides[name] = _parse_setting(name, env[variable])
        if "region" not in overrides and env.get("AWS_REGION"):
            overrides["region"] = env["AWS_REGION"]
        return cls.from_url(url, **overrides)


_INT_SETTINGS = {"multipart_threshold_bytes", "multipart_part_bytes", "max_attempts"}
_FLOAT_SETTINGS = {"connect_timeout_s", "read_timeout_s"}
_TEXT_SETTINGS = {"endpoint_url", "region", "storage_class", "addressing_style"}


def _parse_setting(name: str, text: str) -> Any:
    try:
        if name in _INT_SETTINGS:
            return int(text)
        if name in _FLOAT_SETTINGS:
            return float(text)
    except ValueError:
        raise ConfigurationError(f"S3 setting {name}={text!r} is not a number.") from None
    if name == "single_writer":
        if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigurationError(f"single_writer={text!r}: use true or false.")
        return text.lower() in ("true", "1", "yes")
    if name in _TEXT_SETTINGS:
        return text
    raise ConfigurationError(
        f"Unknown S3 setting {name!r}. Known settings: "
        f"{', '.join(sorted(_INT_SETTINGS | _FLOAT_SETTINGS | _TEXT_SETTINGS | {'single_writer'}))}."
    )


def _add_content_md5(request: Any, **_: Any) -> None:
    # Some S3-compatible services (OpenStack Swift's s3api) reject DeleteObjects without
    # Content-MD5, while botocore 1.36 and later only send a CRC32 checksum.
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    digest = hashlib.md5(body, usedforsecurity=False).digest()
    request.headers["Content-MD5"] = base64.b64encode(digest).decode("ascii")


def _content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def _strip_etag(etag: str) -> str:
    return etag.strip('"')


class S3ObjectStore:
    """An :class:`~tiering.objectstore.ObjectStore` on one S3 bucket and prefix.

    Thread-safe: the boto3 client is shared and botocore clients are thread-safe.
    Keys passed in and returned are relative to ``config.prefix``.
    """

    def __init__(self, config: S3Config, *, writable: bool = True, client: Any = None):
        """Connect to the bucket and, when ``writable``, check conditional writes.

        Raises:
            ConditionalWriteUnsupportedError: ``writable`` without ``single_writer`` and
                the service does not honour If-None-Match on PUT.
            ObjectStoreError: the bucket cannot be reached.
        """
        self.config = config
        self._client = client if client is not None else self._make_client(config)
        self._client.meta.events.register("before-sign.s3.DeleteObjects", _add_content_md5)
        if writable and not config.single_writer:
            self.check_conditional_writes()

    @classmethod
    def from_url(cls, url: str, *, writable: bool = True, **overrides: Any) -> S3ObjectStore:
        """Open the store that ``s3://bucket/prefix?setting=value`` names.

        See :meth:`S3Config.from_url` for the settings. Raises ConfigurationError and the
        errors of the constructor.
        """
        return cls(S3Config.from_url(url, **overrides), writable=writable)

    @staticmethod
    def _make_client(config: S3Config) -> Any:
        botocore_config = Config(
            connect_timeout=config.connect_timeout_s,
            read_timeout=config.read_timeout_s,
            retries={"total_max_attempts": config.max_attempts, "mode": "standard"},
            s3={"addressing_style": config.addressing_style},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            aws_session_token=config.session_token,
            region_name=config.region,
        )
        return session.client("s3", endpoint_url=config.endpoint_url, config=botocore_config)

    def __repr__(self) -> str:
        where = self.config.endpoint_url or "AWS"
        return f"S3ObjectStore(s3://{self.config.bucket}/{self.config.prefix} at {where})"

    # Protocol ------------------------------------------------------------------

    def get(self, key: str, byte_range: tuple[int, int] | None = None) -> bytes:
        """Return the object's bytes, or bytes ``[start, end)`` of it.

        A range past the end of the object returns the bytes that exist (possibly
        none), as a file read would.
        """
        arguments: dict[str, Any] = {"Bucket": self.config.bucket, "Key": self._full(key)}
        if byte_range is not None:
            start, end = byte_range
            if start < 0 or end < start:
                raise ObjectStoreError(
                    f"get {key!r} failed: invalid byte range {byte_range}; use 0 <= start <= end."
                )
            if end == start:
                self.head(key)
                return b""
            arguments["Range"] = f"bytes={start}-{end - 1}"
        try:
            response = self._call("get", key, lambda: self._client.get_object(**arguments))
            return bytes(self._call("get", key, response["Body"].read))
        except ObjectStoreError as exc:
            if byte_range is not None and "InvalidRange" in str(exc):
                return b""
            raise

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        """Store ``data`` under ``key`` and return its ETag (without quotes).

        Raises:
            PreconditionFailedError: ``if_none_match`` and the key exists, or
                ``if_match`` and the stored ETag differs (or the key is missing).
            ConditionalWriteUnsupportedError: the service rejected the precondition.
            ObjectStoreError: any other failure.
        """
        if if_none_match and if_match is not None:
            raise ObjectStoreError(f"put {key!r} failed: pass if_none_match or if_match, not both.")
        if self.config.single_writer:
            self._check_emulated_precondition(key, if_none_match, if_match)
            if_none_match, if_match = False, None

        conditions: dict[str, str] = {}
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        elif if_match is not None:
            conditions["IfMatch"] = f'"{_strip_etag(if_match)}"'
        extra: dict[str, str] = {}
        if key.startswith(SEGMENT_PREFIX) and self.config.storage_class != "STANDARD":
            extra["StorageClass"] = self.config.storage_class

        try:
            etag = self._upload(key, data, conditions, extra)
        except ObjectNotFoundError as exc:
            if "IfMatch" not in conditions:
                raise
            # S3 returns 404 for If-Match on a missing key: the precondition does not hold.
            raise PreconditionFailedError(
                f"put {key!r} in bucket {self.config.bucket!r} failed: the object does not exist (If-Match)."
            ) from exc
        logger.debug("Stored %s (%d bytes) in %r", key, len(data), self)
        return etag

    def _upload(self, key: str, data: bytes, conditions: dict[str, str], extra: dict[str, str]) -> str:
        if len(data) >= self.config.multipart_threshold_bytes:
            return self._put_multipart(key, data, conditions, extra)
        response = self._call(
            "put",
            key,
            lambda: self._client.put_object(
                Bucket=self.config.bucket,
                Key=self._full(key),
                Body=data,
                ContentMD5=_content_md5(data),
                **conditions,
                **extra,
            ),
        )
        return _strip_etag(response["ETag"])

    def head(self, key: str) -> ObjectInfo:
        response = self._call(
            "head",
            key,
            lambda: self._client.head_object(Bucket=self.config.bucket, Key=self._full(key)),
        )
        return ObjectInfo(
            key,
            int(response["ContentLength"]),
            _strip_etag(response["ETag"]),
            response["LastModified"].timestamp(),
        )

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Return every object whose key starts with ``prefix``, sorted by key.

        Follows continuation tokens, so any number of keys is returned.
        """
        return sorted(self._iter_list(prefix), key=lambda info: info.key)

    def _iter_list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.config.bucket, Prefix=self._full(prefix))
        iterator = iter(pages)
        while True:
            page = self._call("list", prefix, lambda: next(iterator, None))
            if page is None:
                return
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    item["Key"][len(self.config.prefix) :],
                    int(item["Size"]),
                    _strip_etag(item.get("ETag", "")),
                    item["LastModified"].timestamp(),
                )

    def delete(self, keys: Sequence[str]) -> None:
        """Delete ``keys`` in batches of 1000; missing keys are ignored."""
        keys = list(dict.fromkeys(keys))
        for start in range(0, len(keys), DELETE_BATCH_KEYS):
            batch = keys[start : start + DELETE_BATCH_KEYS]
            request = {"Objects": [{"Key": self._full(key)} for key in batch], "Quiet": True}
            response = self._call(
                "delete",
                batch[0],
                lambda request=request: self._client.delete_objects(  # type: ignore[misc]
                    Bucket=self.config.bucket, Delete=request
                ),
            )
            failed = [error for error in response.get("Errors", []) if error.get("Code") != "NoSuchKey"]
            if failed:
                first = failed[0]
                raise ObjectStoreError(
                    f"delete failed for {len(failed)} of {len(batch)} keys in bucket "
                    f"{self.config.bucket!r}, first {first.get('Key')!r}: {first.get('Code')} "
                    f"{first.get('Message', '')}".rstrip()
                    + ". Check the credentials' s3:DeleteObject permission and retry."
                )
        if keys:
            logger.debug("Deleted %d keys from %r", len(keys), self)

    # Conditional writes ----------------------------------------------------------

    def check_conditional_writes(self) -> None:
        """Verify that the service honours If-None-Match on PUT, with a probe key.

        Creates ``_probe/<uuid>`` twice with If-None-Match; the second PUT must fail
        with 412. The probe key is deleted afterwards.

        Raises:
            ConditionalWriteUnsupportedError: the service rejected the header (501) or
                let the second PUT succeed.
            ObjectStoreError: the probe could not run.
        """
        probe = f"{PROBE_PREFIX}conditional-write-{uuid.uuid4().hex}"
        try:
            self.put(probe, b"probe", if_none_match=True)
            try:
                self.put(probe, b"probe", if_none_match=True)
            except PreconditionFailedError:
                logger.debug("%r honours conditional writes", self)
                return
        finally:
            self.delete([probe])
        raise ConditionalWriteUnsupportedError(
            f"{self!r} ignored If-None-Match: a second conditional PUT of {probe!r} "
            f"succeeded. {_CONDITIONAL_WRITE_ADVICE}"
        )

    def _check_emulated_precondition(self, key: str, if_none_match: bool, if_match: str | None) -> None:
        if not if_none_match and if_match is None:
            return
        try:
            current: str | None = self.head(key).etag
        except ObjectNotFoundError:
            current = None
        if if_none_match and current is not None:
            raise PreconditionFailedError(
                f"put {key!r} failed: the object already exists in bucket "
                f"{self.config.bucket!r} (If-None-Match, emulated in single-writer mode)."
            )
        if if_match is not None and current != _strip_etag(if_match):
            raise PreconditionFailedError(
                f"put {key!r} failed: ETag is {current!r}, expected {if_match!r} "
                f"(If-Match, emulated in single-writer mode)."
            )

    # Multipart -------------------------------------------------------------------

    def _put_multipart(self, key: str, data: bytes, conditions: dict[str, str], extra: dict[str, str]) -> str:
        full = self._full(key)
        bucket = self.config.bucket
        created = self._call(
            "put",
            key,
            lambda: self._client.create_multipart_upload(Bucket=bucket, Key=full, **extra),
        )
        upload_id = created["UploadId"]
        try:
            parts = []
            part_bytes = self.config.multipart_part_bytes
            for number, start in enumerate(range(0, len(data), part_bytes), start=1):
                chunk = data[start : start + part_bytes]
                response = self._call(
                    "put",
                    key,
                    lambda chunk=chunk, number=number: self._client.upload_part(  # type: ignore[misc]
                        Bucket=bucket,
                        Key=full,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=chunk,
                        ContentMD5=_content_md5(chunk),
                    ),
                )
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
            completed = self._call(
                "put",
                key,
                lambda: self._client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=full,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **conditions,
                ),
            )
        except BaseException:
            try:
                self._client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                logger.warning(
                    "Could not abort the multipart upload of %s; a lifecycle rule "
                    "for incomplete uploads will remove its parts",
                    key,
                    exc_info=exc,
                )
            raise
        logger.info("Uploaded %s in %d parts (%d bytes)", key, len(parts), len(data))
        return _strip_etag(completed["ETag"])

    # Helpers ---------------------------------------------------------------------

    def _full(self, key: str) -> str:
        return self.config.prefix + key

    def _call(self, operation: str, key: str, function: Callable[[], T]) -> T:
        try:
            return function()
        except botocore.exceptions.ClientError as exc:
            raise self._translate(operation, key, exc) from exc
        except _UNAVAILABLE_ERRORS as exc:
            raise ObjectStoreUnavailableError(
                f"{operation} {key!r} in bucket {self.config.bucket!r} failed: the endpoint "
                f"{self.config.endpoint_url or 'AWS S3'} cannot be reached or timed out after "
                f"{self.config.max_attempts} attempts ({exc}). Check that the service is "
                "running and reachable, then retry."
            ) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise ObjectStoreError(
                f"{operation} {key!r} in bucket {self.config.bucket!r} failed: no AWS "
                "credentials found. Set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a shared "
                "credentials profile, or an instance role."
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise ObjectStoreError(
                f"{operation} {key!r} in bucket {self.config.bucket!r} failed: {exc}."
            ) from exc

    def _translate(self, operation: str, key: str, exc: botocore.exceptions.ClientError) -> ObjectStoreError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        where = f"{operation} {key!r} in bucket {self.config.bucket!r}"
        message = str(error.get("Message", "")).rstrip(".")
        detail = f"{code or status}: {message}" if message else (code or status)

        if code == "NoSuchBucket":
            return ObjectStoreError(
                f"{where} failed: the bucket does not exist. Create it or fix the bucket name."
            )
        if code in _NOT_FOUND_CODES or status == "404":
            return ObjectNotFoundError(f"{where} failed: object not found ({detail}).")
        if code in _PRECONDITION_CODES or status in ("412", "409"):
            return PreconditionFailedError(f"{where} failed: the precondition does not hold ({detail}).")
        if operation == "put" and (code == "NotImplemented" or status == "501"):
            return ConditionalWriteUnsupportedError(
                f"{where} failed: the service does not support conditional writes ({detail}). "
                f"{_CONDITIONAL_WRITE_ADVICE}"
            )
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return ObjectStoreError(
                f"{where} failed: access denied ({detail}). Check the credentials and the bucket policy."
            )
        if code == "InvalidRange" or status == "416":
            return ObjectStoreError(f"{where} failed: InvalidRange ({detail}).")
        return ObjectStoreError(f"{where} failed: {detail} (HTTP {status}).")
