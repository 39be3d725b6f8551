"""The exception tree of vector-tiering.

Every error the library raises on purpose derives from :class:`TieringError`::

    TieringError
    ├── ConfigurationError          a setting is invalid or missing
    ├── ValidationError             bad input from the caller (also a ValueError)
    │   └── FilterError             a filter that cannot be parsed or evaluated
    ├── BackendError                the vector store failed
    │   ├── BackendUnavailableError     it cannot be reached or timed out
    │   └── UnsupportedOperationError   it cannot do what was requested
    ├── ObjectStoreError            the object store failed
    │   ├── ObjectStoreUnavailableError  it cannot be reached or timed out
    │   ├── ObjectNotFoundError         a key does not exist
    │   ├── PreconditionFailedError     a conditional write lost
    │   └── ConditionalWriteUnsupportedError  the store ignores conditional writes
    ├── ManifestConflictError       another writer committed the same manifest version
    └── CorruptDataError            a segment, manifest or saved index fails its checks

Adapters translate third-party exceptions at their boundary with
``raise ... from exc`` so that callers only ever catch these classes.
"""

from __future__ import annotations


class TieringError(Exception):
    """Root of every error that vector-tiering raises on purpose."""


class ConfigurationError(TieringError):
    """A setting is invalid, missing, or inconsistent with the stored data."""


class ValidationError(TieringError, ValueError):
    """Caller input is invalid; nothing was written."""


class FilterError(ValidationError):
    """A payload filter cannot be parsed, or names a field no record has."""


class BackendError(TieringError):
    """The vector store behind the proxy failed."""


class BackendUnavailableError(BackendError):
    """The vector store cannot be reached, or a call to it timed out."""


class UnsupportedOperationError(BackendError):
    """The vector store cannot express the requested operation or filter."""


class ObjectStoreError(TieringError):
    """The object store failed; the message names the operation and the key."""


class ObjectStoreUnavailableError(ObjectStoreError):
    """The object store cannot be reached, or a call to it timed out after its retries."""


class ObjectNotFoundError(ObjectStoreError):
    """The requested key does not exist in the object store."""


class PreconditionFailedError(ObjectStoreError):
    """A conditional write failed because the key exists or changed."""


class ConditionalWriteUnsupportedError(ObjectStoreError):
    """The object store does not honour conditional writes (If-None-Match, If-Match)."""


class ManifestConflictError(TieringError):
    """Another writer kept committing manifest versions until the retries ran out."""


class CorruptDataError(TieringError):
    """A segment, manifest or saved index is truncated or fails its checksum."""
