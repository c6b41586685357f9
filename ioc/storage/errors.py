"""Database errors split into transient (retry with backoff) and permanent (surface) by SQLSTATE."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATE classes where the same statement can succeed later: connection exceptions,
# transaction rollbacks (serialization failure, deadlock), insufficient resources,
# operator intervention (shutdown, cancel), system errors.
TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
# Lock not available, object in use, idle-in-transaction timeout.
TRANSIENT_STATES = frozenset({"55P03", "55006", "25P03"})


class StorageError(Exception):
    """Base of the storage errors the layers above handle."""


class PermanentStorageError(StorageError):
    """The database refused the statement for a reason retrying will not fix."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def sqlstate_of(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None)


def is_transient(exc: BaseException) -> bool:
    """True when retrying later can succeed (connection loss, restart, conflicts, overload)."""
    state = sqlstate_of(exc)
    if state:
        return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES
    return isinstance(
        exc,
        OSError
        | ConnectionError
        | TimeoutError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.exceptions.ConnectionDoesNotExistError,
    )


def error_type(exc: BaseException) -> str:
    """A bounded label for metrics: the SQLSTATE class name, or the exception family."""
    state = sqlstate_of(exc)
    if state:
        return f"sqlstate_{state[:2]}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError | ConnectionError | asyncpg.InterfaceError):
        return "connection"
    return "other"


async def retry_transient(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    initial_delay: float = 0.1,
    max_delay: float = 5.0,
    max_attempts: int | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run ``op`` until it succeeds, backing off on transient errors.

    Permanent database errors are raised as :class:`PermanentStorageError`; with
    ``max_attempts`` unset, transient errors are retried for as long as it takes, which
    is what lets a pipeline ride out a database restart without dropping anything.
    """
    delay = initial_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return await op()
        except asyncpg.PostgresError as exc:
            if not is_transient(exc):
                raise PermanentStorageError(f"{what}: {exc}", sqlstate_of(exc)) from exc
            last: BaseException = exc
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
            # A connection broken mid-protocol; the pool replaces it on the next acquire.
            last = exc
        if max_attempts is not None and attempt >= max_attempts:
            raise last
        if on_retry:
            on_retry(last)
        log.warning("%s failed (%s: %s); retry %d in %.1fs", what, type(last).__name__,
                    str(last).splitlines()[0] if str(last) else "", attempt, delay)
        await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
        delay = min(delay * 2, max_delay)


class DatabaseUnavailable(StorageError):
    """The database cannot be reached or refused the connection."""
