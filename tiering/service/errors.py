"""Mapping of library errors to HTTP responses; each error is logged once.

=============================================  ======
error                                          status
=============================================  ======
ValidationError, FilterError (bad input)       400
request body outside the schema or its limits  422 (FastAPI's check)
TieringBusyError (a pass runs, or no lease)    409
BackendUnavailableError, SharedScoresError,    503
ServiceUnavailableError (store not open),
an object store that cannot be reached
any other TieringError                         500
any other exception                            500, logged with its traceback
=============================================  ======

Every error response is ``{"error": <class name>, "message": <sentence>}``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from tiering.errors import BackendUnavailableError, ObjectStoreUnavailableError, TieringError, ValidationError
from tiering.records import Id
from tiering.service.loop import TieringBusyError
from tiering.service.metrics import ServiceMetrics
from tiering.service.runtime import ServiceUnavailableError
from tiering.shared_scores import SharedScoresError

logger = logging.getLogger(__name__)

LOGGED_IDS = 10
"""Ids named in a log line; the rest are counted."""


class ApiError(Exception):
    """An error response: HTTP status, error class name and message."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


_UNAVAILABLE = (
    BackendUnavailableError,
    ObjectStoreUnavailableError,
    SharedScoresError,
    ServiceUnavailableError,
)


def status_for(exc: TieringError) -> int:
    """Return the HTTP status for a library error (see the module table)."""
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, TieringBusyError):
        return 409
    if isinstance(exc, _UNAVAILABLE):
        return 503
    return 500


def describe_ids(ids: Sequence[Id] | None) -> str:
    """Return the first ids and the count, for a log line."""
    if not ids:
        return "no ids"
    shown = ", ".join(repr(record_id) for record_id in ids[:LOGGED_IDS])
    more = f" and {len(ids) - LOGGED_IDS} more" if len(ids) > LOGGED_IDS else ""
    return f"{len(ids)} ids [{shown}{more}]"


@dataclass
class Operation:
    """One API call in progress: its name, the ids it touches and the tiers it reached."""

    name: str
    ids: Sequence[Id] | None = None
    tier: str = "hot"
    started_s: float = field(default_factory=time.perf_counter)


@contextmanager
def operation(metrics: ServiceMetrics, name: str, ids: Sequence[Id] | None = None) -> Iterator[Operation]:
    """Time and count one API call; turn its errors into :class:`ApiError`, logged once.

    The body may set ``tier`` on the yielded :class:`Operation` before it ends.
    """
    current = Operation(name, ids)
    try:
        yield current
    except TieringError as exc:
        status = status_for(exc)
        level = logging.WARNING if status < 500 else logging.ERROR
        logger.log(level, "%s of %s failed with %d: %s", name, describe_ids(current.ids), status, exc)
        _observe(metrics, current, status)
        raise ApiError(status, type(exc).__name__, str(exc)) from exc
    except Exception as exc:
        logger.exception("%s of %s failed unexpectedly", name, describe_ids(current.ids))
        _observe(metrics, current, 500)
        message = f"{name} failed unexpectedly ({type(exc).__name__}: {exc}). See the service log."
        raise ApiError(500, "InternalError", message) from exc
    _observe(metrics, current, 200)


def _observe(metrics: ServiceMetrics, current: Operation, status: int) -> None:
    metrics.observe_request(current.name, current.tier, status, time.perf_counter() - current.started_s)
