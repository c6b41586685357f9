"""The live feed: SSE over a real uvicorn server, resume by Last-Event-ID, gap safety, slow clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from ioc.alerts.feed import FeedFilter
from tests.integration.alerts.conftest import (
    BASE_US,
    NB_DEVICES,
    NGA_BAY,
    VI_THANH,
    VT_DEVICES,
    Api,
    fire,
    make_alerts,
    record,
    serve,
    until,
)

Frame = tuple[int, dict[str, Any]]


class Stream:
    """An SSE client reading frames (id, data) and comments off an httpx streaming response."""

    def __init__(self, resp: httpx.Response) -> None:
        self.resp = resp
        self._lines = resp.aiter_lines()
        self.comments: list[str] = []
        self.retry: int | None = None

    async def next(self, within: float = 10.0) -> Frame | None:
        """The next event, or None when the server ended the stream."""
        feed_id: int | None = None
        data: str | None = None
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line.startswith(":"):
                    self.comments.append(line)
                elif line.startswith("retry: "):
                    self.retry = int(line[7:])
                elif line.startswith("id: "):
                    feed_id = int(line[4:])
                elif line.startswith("data: "):
                    data = line[6:]
                elif line == "" and feed_id is not None and data is not None:
                    return feed_id, json.loads(data)
        return None

    async def take(self, n: int, within: float = 10.0) -> list[Frame]:
        out = []
        for _ in range(n):
            frame = await self.next(within)
            assert frame is not None, f"stream ended after {len(out)} of {n} frames"
            out.append(frame)
        return out

    async def subscribed(self) -> None:
        """The server sends ``retry:`` right after it registered the subscription."""
        async with asyncio.timeout(10):
            async for line in self._lines:
                if line.startswith("retry: "):
                    self.retry = int(line[7:])
                    return


@contextlib.asynccontextmanager
async def stream(api: Api, role: str = "admin", params: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> AsyncIterator[Stream]:
    async with api.client(role) as client, client.stream(
            "GET", "/alerts/stream", params=params, headers=headers) as resp:
        assert resp.status_code == 200, await resp.aread()
        assert resp.headers["content-type"].startswith("text/event-stream")
        s = Stream(resp)
        await s.subscribed()
        yield s


async def feed_after(pool: asyncpg.Pool, after: int) -> list[Frame]:
    rows = await pool.fetch("SELECT id, data::text FROM alert_feed WHERE id > $1 ORDER BY id", after)
    return [(r["id"], json.loads(r["data"])) for r in rows]


async def test_reconnect_with_last_event_id_gets_exactly_what_was_missed(
        database: str, pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool)
    async with serve(database, pool, alerts) as api:
        async with stream(api) as s:
            await record(alerts, pool, [fire("st-resume", VT_DEVICES[0])])
            ((last_id, first),) = await s.take(1)
        assert first["change"] == "fired" and first["device_id"] == VT_DEVICES[0]
        assert set(first) >= {"id", "rule_id", "device_id", "district", "severity", "state",
                              "message", "value", "count", "started_at", "last_seen_at",
                              "acknowledged_at", "acknowledged_by", "resolved_at", "silenced"}
        # Disconnected: 20 changes happen (fires, a repeat, acks and resolves).
        await record(alerts, pool, [fire("st-resume", d) for d in VT_DEVICES[1:11]])
        await record(alerts, pool, [fire("st-resume", VT_DEVICES[1])])
        ids = [r["id"] for r in await pool.fetch(
            "SELECT id FROM alerts WHERE rule_id = 'st-resume' ORDER BY id")]
        for alert_id in ids[1:6]:
            await alerts.ack(alert_id, "op-lan", None)
        for alert_id in ids[6:10]:
            await alerts.resolve(alert_id, "op-lan", None)
        missed = await feed_after(pool, last_id)
        assert len(missed) == 20
        async with stream(api, headers={"Last-Event-ID": str(last_id)}) as s:
            got = await s.take(20)
            assert got == missed
            await record(alerts, pool, [fire("st-resume", VT_DEVICES[12])])
            (live,) = await s.take(1)
        assert live[0] > got[-1][0] and live[1]["device_id"] == VT_DEVICES[12]
        assert [g[1]["change"] for g in got] == (["fired"] * 10 + ["repeated"]
                                                 + ["acknowledged"] * 5 + ["resolved"] * 4)
        # The same with the query parameter (the header wins when both are sent).
        async with stream(api, params={"last_event_id": last_id}) as s:
            assert await s.take(21) == [*missed, live]
        async with stream(api, params={"last_event_id": 0},
                          headers={"Last-Event-ID": str(got[-1][0])}) as s:
            assert await s.take(1) == [live]


async def test_filters_and_agency_scope(database: str, pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool)
    async with serve(database, pool, alerts) as api:
        async with api.client("agency_vt") as client:
            r = await client.get("/alerts/stream", params={"district": NGA_BAY})
            assert r.status_code == 403 and r.json()["error"] == "forbidden"
            r = await client.get("/alerts/stream", headers={"Last-Event-ID": "abc"})
            assert r.status_code == 400 and r.json()["error"] == "bad_request"
        async with api.client("ingest") as client:
            assert (await client.get("/alerts/stream")).status_code == 403
        async with stream(api, "agency_vt") as vt, \
                stream(api, params={"severity": "warning"}) as warn, \
                stream(api, params={"district": NGA_BAY}) as nb:
            await record(alerts, pool, [
                fire("st-filter", NB_DEVICES[0]), fire("st-filter", VT_DEVICES[0], severity="warning"),
                fire("st-filter", "hg-xx-wl-001"), fire("st-filter", VT_DEVICES[1])])
            vt_got = await vt.take(2)
            warn_got = await warn.take(1)
            nb_got = await nb.take(1)
        assert [f[1]["device_id"] for f in vt_got] == [VT_DEVICES[0], VT_DEVICES[1]]
        assert all(f[1]["district"] == VI_THANH for f in vt_got)
        assert [f[1]["device_id"] for f in warn_got] == [VT_DEVICES[0]]
        assert [f[1]["device_id"] for f in nb_got] == [NB_DEVICES[0]]
        # Replay applies the same scope.
        async with stream(api, "agency_vt", headers={"Last-Event-ID": str(nb_got[0][0] - 1)}) as vt:
            assert await vt.take(2) == vt_got


async def test_heartbeat_comments(database: str, pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool, heartbeat_s=0.3)
    async with serve(database, pool, alerts) as api, stream(api) as s:
        assert s.retry == 2000
        await record(alerts, pool, [fire("st-beat", VT_DEVICES[0])])
        await s.take(1)
        with contextlib.suppress(TimeoutError):
            await s.next(within=1.0)
        assert ": keepalive" in s.comments


async def test_a_client_too_far_behind_is_cut_off_and_resumes(
        database: str, pool: asyncpg.Pool) -> None:
    alerts = make_alerts(pool, client_queue_max=5)
    async with serve(database, pool, alerts) as api:
        async with stream(api) as s:
            # 30 changes reach the pump at once: far more than this client's queue holds.
            await record(alerts, pool, [fire("st-slow", d) for d in VT_DEVICES + NB_DEVICES]
                         + [fire("st-slow-2", d) for d in VT_DEVICES[:12]])
            got: list[Frame] = []
            while (frame := await s.next()) is not None:
                got.append(frame)
        assert len(got) < 30
        start = got[-1][0] if got else (await pool.fetchval(
            "SELECT min(f.id) - 1 FROM alert_feed f JOIN alerts a ON a.id = f.alert_id"
            " WHERE a.rule_id = 'st-slow'"))
        async with stream(api, headers={"Last-Event-ID": str(start)}) as s:
            rest = await s.take(30 - len(got))
        devices = [f[1]["device_id"] for f in got + rest]
        assert devices == VT_DEVICES + NB_DEVICES + VT_DEVICES[:12]

        async def unsubscribed() -> bool:
            return alerts.feed.clients == 0

        await until(unsubscribed)  # the server noticed the client leave


async def test_one_slow_subscriber_does_not_hold_up_another(pool: asyncpg.Pool) -> None:
    """Frames are offered without waiting: the reader keeps up, the sleeper is cut off."""
    alerts = make_alerts(pool, client_queue_max=5)
    await alerts.start()
    try:
        fast = alerts.stream(FeedFilter(), None)
        slow = alerts.stream(FeedFilter(), None)
        assert (await anext(fast), await anext(slow)) == (b"retry: 2000\n\n",) * 2
        received: list[bytes] = []

        async def read() -> None:
            async for chunk in fast:  # frames queued together come in one chunk
                received.extend(f for f in chunk.split(b"\n\n") if f)
                if len(received) == 12:
                    return

        reader = asyncio.create_task(read())
        for i in range(3):
            await record(alerts, pool, [fire("st-two", d, BASE_US + i) for d in VT_DEVICES[4 * i:4 * i + 4]])
            await asyncio.sleep(0.3)
        await asyncio.wait_for(reader, 5)
        assert len(received) == 12
        # The sleeper got at most its queue's worth, then the end of its stream.
        left = [f for chunk in [c async for c in slow] for f in chunk.split(b"\n\n") if f]
        assert len(left) <= 5
        await fast.aclose()
    finally:
        await alerts.stop()


async def test_feed_ids_become_visible_in_order(pool: asyncpg.Pool) -> None:
    """Concurrent transactions that commit in any order never let a reader skip a feed id."""
    alerts = make_alerts(pool)
    start = await pool.fetchval("SELECT coalesce(max(id), 0) FROM alert_feed")
    seen: list[int] = []
    done = asyncio.Event()

    async def reader() -> None:
        last = start
        while not done.is_set() or last < await pool.fetchval("SELECT max(id) FROM alert_feed"):
            rows = await pool.fetch("SELECT id FROM alert_feed WHERE id > $1 ORDER BY id", last)
            if rows:
                seen.extend(r["id"] for r in rows)
                last = rows[-1]["id"]
            await asyncio.sleep(0.001)

    async def writer(i: int) -> None:
        await asyncio.sleep(random.random() * 0.05)
        async with pool.acquire() as conn, conn.transaction():
            await alerts.record(conn, [fire(f"st-order-{i}", VT_DEVICES[i % 15])], None)
            await asyncio.sleep(random.random() * 0.03)  # commit late, maybe after others

    read = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i) for i in range(40)))
    done.set()
    await read
    every = [r["id"] for r in await pool.fetch(
        "SELECT id FROM alert_feed WHERE id > $1 ORDER BY id", start)]
    assert len(every) == 40 and seen == every
