"""The binary COPY encoder against a real PostgreSQL: what goes in comes back out, exactly."""

from __future__ import annotations

import json
import math

import asyncpg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.model import EventBatch
from ioc.storage.copy_binary import COLUMNS, encode_events
from ioc.storage.pool import use_microsecond_timestamps
from tests.support.events import make_batch

MIN_TS, MAX_TS = -210_000_000_000_000_000, 9_000_000_000_000_000_000  # 4685 BC, 287 000 AD
TABLE = """
CREATE TEMP TABLE copied (ord integer, ts timestamptz, device_id text COLLATE "C",
    event_id text COLLATE "C", kind text COLLATE "C", value double precision, unit text,
    attrs jsonb)
"""


async def round_trip(dsn: str, events: EventBatch, *, ordinal: bool) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        await use_microsecond_timestamps(conn)
        await conn.execute(TABLE)
        columns = ["ord", *COLUMNS] if ordinal else list(COLUMNS)
        status = await conn.copy_to_table("copied", source=encode_events(events, ordinal=ordinal),
                                          columns=columns, format="binary")
        assert status == f"COPY {len(events)}"
        return await conn.fetch("SELECT * FROM copied ORDER BY ctid")
    finally:
        await conn.close()


def assert_same(rows: list[asyncpg.Record], events: EventBatch, *, ordinal: bool) -> None:
    """Rows come in time order (ties in batch order), each the event at its ordinal."""
    assert len(rows) == len(events)
    order = sorted(range(len(events)), key=lambda i: int(events.ts[i]))
    for i, row in zip(order, rows, strict=True):
        assert row["ord"] == (i if ordinal else None)
        assert row["ts"] == events.ts[i]
        for column in ("device_id", "event_id", "kind", "unit"):
            assert row[column] == getattr(events, column)[i], (i, column)
        value = float(events.value[i])
        if math.isnan(value):
            assert math.isnan(row["value"])
        else:
            assert (row["value"], math.copysign(1, row["value"])) == (value, math.copysign(1, value))
        attrs = events.attrs[i]
        assert (None if row["attrs"] is None else json.loads(row["attrs"])) == (
            None if attrs is None else json.loads(attrs))


TEXT = ["", "a", "ü", "€", "😀", "µg/m³", 'say "hi"', "back\\slash", "tab\there", "\u2028",
        "x" * 31, "x" * 32, "é" * 127 + "x", "x" * 256, "x" * 511, "x" * 65535, "😀" * 16384]
EDGE = EventBatch(
    device_id=[f"hg-{i}" if i % 2 else text for i, text in enumerate(TEXT)],
    event_id=TEXT,
    kind=list(reversed(TEXT)),
    ts=np.array([0, -1, 1, MIN_TS, MAX_TS, 946_684_800_000_000, *range(11)], np.int64),
    value=np.array([0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308,
                    *range(10)]),
    unit=[None, "", *TEXT[2:]],
    attrs=[None, "{}", '{"station": "Cầu Cái Nhúc", "depth": [1, 2.5, null]}',
           *(json.dumps({"t": t}, ensure_ascii=False) for t in TEXT[3:])],
)


@pytest.mark.parametrize("ordinal", [False, True])
async def test_edge_cases_round_trip(database: str, ordinal: bool) -> None:
    assert_same(await round_trip(database, EDGE, ordinal=ordinal), EDGE, ordinal=ordinal)


@pytest.mark.parametrize("ordinal", [False, True])
async def test_realistic_batch_round_trips(database: str, ordinal: bool) -> None:
    events = make_batch(20_000, seed=7)
    assert_same(await round_trip(database, events, ordinal=ordinal), events, ordinal=ordinal)


async def test_empty_batch(database: str) -> None:
    assert await round_trip(database, EventBatch(), ordinal=False) == []


text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
               max_size=30)
json_text = st.dictionaries(text, text | st.integers(-(2**53), 2**53) | st.booleans(),
                            max_size=4).map(lambda d: json.dumps(d, ensure_ascii=False))
rows = st.tuples(text, text, text, st.integers(MIN_TS, MAX_TS), st.floats(),
                 st.none() | text, st.none() | json_text)


@settings(max_examples=40, deadline=None)
@given(st.lists(rows, max_size=25), st.booleans())
async def test_any_batch_round_trips(database: str, rows: list[tuple], ordinal: bool) -> None:
    dev, eid, kind, ts, value, unit, attrs = (list(c) for c in zip(*rows, strict=True)) if rows else (
        [[] for _ in range(7)])
    events = EventBatch(dev, eid, kind, np.array(ts, np.int64), np.array(value, np.float64), unit,
                        attrs)
    assert_same(await round_trip(database, events, ordinal=ordinal), events, ordinal=ordinal)
