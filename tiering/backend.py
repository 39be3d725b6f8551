"""The interface every vector store adapter implements.

An adapter owns one collection (index, class) of one vector store. It stores the
record's version and original id beside the payload, returns hits in the score
convention of :mod:`tiering.records`, and translates its client's exceptions into
:mod:`tiering.errors` classes at its boundary.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from tiering.filters import Filter
from tiering.records import Hit, Id, Metric, Record, Vector


@runtime_checkable
class Backend(Protocol):
    """One collection in a vector store: the hot tier.

    Implementations are thread-safe for concurrent searches; writes are serialised by
    the caller (:class:`tiering.store.TieredStore` holds a lock around them).

    An adapter whose engine runs inside this process may set a class attribute
    ``in_process = True``; the store then queries the two tiers one after the other
    instead of concurrently (see ``TieringConfig.parallel_tiers``).
    """

    @property
    def dim(self) -> int:
        """Dimension of the stored vectors."""
        ...

    @property
    def metric(self) -> Metric:
        """Similarity metric of the collection."""
        ...

    def upsert(self, records: Sequence[Record]) -> None:
        """Insert or overwrite ``records`` (ids, vectors, payloads and versions).

        Idempotent. Raises BackendError.
        """
        ...

    def search(self, queries: Vector, k: int, filter: Filter | None = None) -> list[list[Hit]]:
        """Return up to ``k`` hits per row of ``queries``, best first, with ``tier="hot"``.

        Raises BackendError, or UnsupportedOperationError for a filter it cannot express.
        """
        ...

    def fetch(self, ids: Sequence[Id]) -> list[Record]:
        """Return the stored records among ``ids`` (missing ids are left out), with vectors.

        Raises BackendError.
        """
        ...

    def delete(self, ids: Sequence[Id]) -> None:
        """Delete ``ids``; ids that do not exist are ignored. Idempotent. Raises BackendError."""
        ...

    def count(self) -> int:
        """Return the number of stored records. Raises BackendError."""
        ...

    def iter_ids(self, batch_size: int = 1000) -> Iterator[list[Id]]:
        """Yield every stored id once, in batches. Raises BackendError."""
        ...

    def close(self) -> None:
        """Release the client. Idempotent."""
        ...
