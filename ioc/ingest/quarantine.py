"""Messages that crashed the pipeline: remembered, isolated, and quarantined at the second crash.

The decoder turns bad input into dead letters without raising, and the writer isolates the
events the database refuses. What is left is a message that makes our own code raise (a bug,
or an input nobody foresaw). The broker redelivers whatever was not confirmed, so without a
memory of such a message a restart would crash on it again, forever. A message is known by a
fingerprint of its transport identity and bytes; the count of crashes it was part of is kept
in memory and in ``ingest_suspects`` (a crash can be followed by kill -9 and a restart). A
suspect is written in a batch of its own; one that crashes alone after a crash before becomes
a ``poison`` dead letter with its raw bytes and is then confirmed like any dead letter.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from ioc.model import RawMessage
from ioc.storage import suspects
from ioc.storage.errors import StorageError, retry_transient

log = logging.getLogger(__name__)

POISON = "poison"
# A message that crashed the pipeline this often is quarantined (when it crashes alone).
POISON_AFTER = 2
# How long a crash is remembered: a poison message redelivered within it is dead-lettered at
# once instead of crashing the pipeline twice more.
MEMORY_S = 86400.0
MAX_SUSPECTS = 100_000


def fingerprint(message: RawMessage) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for part in (message.source, message.topic or "", str(message.partition),
                 str(message.offset) if message.source == "kafka" else ""):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    h.update(message.key or b"")
    h.update(b"\0")
    h.update(message.payload)
    return h.digest()


class Quarantine:
    """Crash counts by message; persisted through ``pool`` when one is given."""

    def __init__(self, pool: asyncpg.Pool | None = None) -> None:
        self._pool = pool
        self._crashes: dict[bytes, int] = {}

    async def load(self) -> None:
        if self._pool is None:
            return
        async with self._pool.acquire() as conn:
            self._crashes = await suspects.load(conn, MEMORY_S)
        if self._crashes:
            log.warning("%d message(s) crashed the pipeline before the restart: each is "
                        "written alone when it comes again", len(self._crashes))

    @property
    def active(self) -> bool:
        """Whether any message is suspect (only then are incoming messages fingerprinted)."""
        return bool(self._crashes)

    def crashes(self, message: RawMessage) -> int:
        return self._crashes.get(fingerprint(message), 0) if self._crashes else 0

    async def crashed(self, messages: Sequence[RawMessage]) -> list[int]:
        """Count a crash for each message; returns their counts now."""
        prints = [fingerprint(m) for m in messages]
        if len(self._crashes) + len(prints) > MAX_SUSPECTS:
            self._crashes.clear()
        for p in dict.fromkeys(prints):
            self._crashes[p] = self._crashes.get(p, 0) + 1
        counts = [self._crashes[p] for p in prints]
        await self._store(suspects.add_crash, prints, "record the crash")
        return counts

    async def passed(self, messages: Sequence[RawMessage], *, poisoned: bool = False) -> None:
        """The messages were stored or dead-lettered: innocent suspects are forgotten; a
        poison one (``poisoned``) is remembered, so that it is quarantined at once next time."""
        if not self._crashes or poisoned:
            return
        prints = [p for p in map(fingerprint, messages) if p in self._crashes]
        for p in prints:
            del self._crashes[p]
        if prints:
            await self._store(suspects.forget, prints, "forget the suspects")

    async def _store(self, op: Callable[[asyncpg.Connection, list[bytes]], Awaitable[None]],
                     prints: list[bytes], what: str) -> None:
        if self._pool is None:
            return
        pool = self._pool

        async def attempt() -> None:
            async with pool.acquire() as conn:
                await op(conn, prints)

        try:
            await retry_transient(attempt, what=what, max_attempts=3)
        except (StorageError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not %s of %d message(s) in the database (%s): kept in memory "
                        "only", what, len(prints), exc)
