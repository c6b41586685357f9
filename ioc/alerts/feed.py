"""The live alert feed: rows of ``alert_feed`` fanned out to Server-Sent-Event clients.

One pump task per instance reads new feed rows in id order — woken right after a local commit,
and polling for rows other instances wrote — and hands each row, encoded once, to every
subscriber whose filter matches. Feed ids commit in increasing order (see lifecycle.py), so
"every row with an id above the last one seen" never skips a row.

A subscriber owns a bounded queue: the pump never waits for a client. A client that falls
``queue_max`` frames behind is disconnected; it reconnects with ``Last-Event-ID`` and catches
up from the table. Resuming is gap- and duplicate-free: a subscription is registered at the
pump's position P (atomically, on the event loop), frames above P arrive through the queue,
and ``Last-Event-ID < id <= P`` is replayed from the database first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg

from ioc.metrics import Metrics
from ioc.storage.alerts import feed_after, feed_head, feed_replay
from ioc.tasks import Supervisor, cancel_and_wait

log = logging.getLogger(__name__)

_PAGE = 500
_DB_ERRORS = (asyncpg.PostgresError, OSError, asyncpg.InterfaceError, TimeoutError)


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which changes a client gets; ``districts`` None means every district."""

    districts: frozenset[str] | None = None
    severity: str | None = None

    def matches(self, district: str | None, severity: str) -> bool:
        if self.districts is not None and district not in self.districts:
            return False
        return self.severity is None or severity == self.severity


def frame(feed_id: int, data: str) -> bytes:
    return f"id: {feed_id}\ndata: {data}\n\n".encode()


class Subscription:
    """One connected client: a filter, its start position and a bounded queue of frames."""

    def __init__(self, filter: FeedFilter, position: int, queue_max: int) -> None:
        self.filter = filter
        self.position = position
        self.queue: asyncio.Queue[tuple[int, bytes] | None] = asyncio.Queue(queue_max)
        self.closed = False

    def offer(self, item: tuple[int, bytes]) -> bool:
        """Queue a frame without waiting; False (and closed) when the client is too far behind."""
        if self.closed:
            return False
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            self.close()
            return False

    def close(self) -> None:
        """End the client's stream; queued frames are dropped, it resumes by Last-Event-ID."""
        if self.closed:
            return
        self.closed = True
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class LiveFeed:
    def __init__(self, pool: asyncpg.Pool, metrics: Metrics, *, poll_s: float = 0.5,
                 heartbeat_s: float = 15.0, queue_max: int = 1000,
                 supervisor: Supervisor | None = None) -> None:
        self._pool = pool
        self._supervisor = supervisor or Supervisor()
        self._metrics = metrics
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.queue_max = queue_max
        self._position = 0
        self._subscribers: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def position(self) -> int:
        """The highest feed id handed to subscribers."""
        return self._position

    async def start(self) -> None:
        self._position = await feed_head(self._pool)
        self._task = self._supervisor.spawn("alerts-feed", self._pump_loop)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        self.close_streams()

    def close_streams(self) -> None:
        """End every open stream (at shutdown; clients resume from Last-Event-ID elsewhere)."""
        for sub in self._subscribers:
            sub.close()
        self._subscribers.clear()

    def wake(self) -> None:
        self._wake.set()

    # ---- pump ------------------------------------------------------------------------------

    async def _pump_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()
            try:
                while await self._pump() == _PAGE:
                    pass
            except _DB_ERRORS as exc:
                log.warning("live feed: reading alert_feed failed (%s: %s); retrying",
                            type(exc).__name__, exc)
                await asyncio.sleep(1.0)

    async def _pump(self) -> int:
        rows = await feed_after(self._pool, self._position, _PAGE)
        now = time.time()
        dropped = 0
        for row in rows:
            feed_id = row["id"]
            data = frame(feed_id, row["data"])
            for sub in list(self._subscribers):
                if sub.filter.matches(row["district"], row["severity"]) and not sub.offer(
                        (feed_id, data)):
                    self._subscribers.discard(sub)
                    dropped += 1
            self._position = feed_id
            if row["received_at"] is not None:
                self._metrics.alert_latency.observe(max(now - row["received_at"], 0.0))
        if dropped:
            log.warning("live feed: %d client(s) fell %d frames behind and were disconnected",
                        dropped, self.queue_max)
        return len(rows)

    # ---- clients ---------------------------------------------------------------------------

    def subscribe(self, filter: FeedFilter) -> Subscription:
        sub = Subscription(filter, self._position, self.queue_max)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    @property
    def clients(self) -> int:
        return len(self._subscribers)

    async def replay(self, filter: FeedFilter, after: int, upto: int) -> AsyncIterator[bytes]:
        """Frames with ``after < id <= upto`` from the database, a page at a time."""
        districts: Sequence[str] | None = (
            sorted(filter.districts) if filter.districts is not None else None)
        while after < upto:
            rows = await feed_replay(self._pool, after, upto, districts, filter.severity, _PAGE)
            if not rows:
                return
            for row in rows:
                yield frame(row["id"], row["data"])
            after = rows[-1]["id"]

    async def stream(self, filter: FeedFilter, last_event_id: int | None) -> AsyncIterator[bytes]:
        """The SSE body of one client: missed frames from the table, then live ones.

        Subscribes on the first iteration and unsubscribes when the client goes away (the
        generator is closed or cancelled), so an unstarted body leaks nothing.
        """
        sub = self.subscribe(filter)
        try:
            yield b"retry: 2000\n\n"
            seen = sub.position
            if last_event_id is not None:
                async for data in self.replay(filter, last_event_id, sub.position):
                    yield data
                seen = max(sub.position, last_event_id)
            while True:
                try:
                    item = await asyncio.wait_for(sub.queue.get(), self.heartbeat_s)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                # Whatever else is queued goes out in the same write: in a storm a frame a
                # write costs the server more than the frame.
                chunk = []
                while item is not None:
                    if item[0] > seen:
                        chunk.append(item[1])
                    if sub.queue.empty():
                        break
                    item = sub.queue.get_nowait()
                if chunk:
                    yield b"".join(chunk)
                if item is None:
                    return
        finally:
            self.unsubscribe(sub)
