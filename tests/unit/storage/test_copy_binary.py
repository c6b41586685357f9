"""The binary COPY encoder, byte for byte against a plain row-by-row one, with the accelerators
on (the compiled row writer) and off (the encoder's own struct reference). The database round
trip is in tests/integration/storage/test_copy_binary.py."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.model import EventBatch
from ioc.storage.copy_binary import encode_events
from ioc.storage.pool import PG_EPOCH_US
from tests.support.events import make_batch
from tests.unit.fast import accelerated

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
MIN_TS, MAX_TS = -210_000_000_000_000_000, 9_000_000_000_000_000_000  # in PostgreSQL's range


def reference(events: EventBatch, *, ordinal: bool = False) -> bytes:
    """The format spelled out with struct, one row and one field at a time, in time order."""
    out = [SIGNATURE]
    for i in sorted(range(len(events)), key=lambda i: int(events.ts[i])):
        fields: list[bytes | None] = [struct.pack(">i", i)] if ordinal else []
        fields += [
            struct.pack(">q", int(events.ts[i]) - PG_EPOCH_US),
            events.device_id[i].encode(),
            events.event_id[i].encode(),
            events.kind[i].encode(),
            struct.pack(">d", float(events.value[i])),
            None if events.unit[i] is None else events.unit[i].encode(),
            None if events.attrs[i] is None else b"\x01" + events.attrs[i].encode(),
        ]
        out.append(struct.pack(">h", len(fields)))
        for field in fields:
            out.append(struct.pack(">i", -1) if field is None else struct.pack(">i", len(field)) + field)
    out.append(struct.pack(">h", -1))
    return b"".join(out)


def batch(rows: list[tuple]) -> EventBatch:
    """Rows of (device_id, event_id, kind, ts, value, unit, attrs)."""
    dev, eid, kind, ts, value, unit, attrs = (list(c) for c in zip(*rows, strict=True)) if rows else ([],) * 7
    return EventBatch(dev, eid, kind, np.array(ts, np.int64), np.array(value, np.float64), unit, attrs)


# 1 to 4-byte UTF-8, quotes, control characters (NUL too: PostgreSQL refuses it, the encoder
# passes it on), and lengths that straddle msgpack's str header sizes (31/32, 255/256,
# 65535/65536 bytes) or have 0xff bytes (255, 511, 65535).
ODD_TEXT = ["", "a", "ü", "€", "😀", "µg/m³", 'say "hi"', "back\\slash", "tab\there", "nul\x00",
            "\u2028", "x" * 31, "x" * 32, "é" * 127 + "x", "x" * 256, "x" * 511,
            "x" * 65535, "😀" * 16384]
EDGE = batch([
    (f"dev-{i}" if i % 3 else text, text, "k" if i % 2 else text, ts, value, unit, attrs)
    for i, (text, ts, value, unit, attrs) in enumerate(zip(
        ODD_TEXT,
        [0, -1, 1, MIN_TS, MAX_TS, PG_EPOCH_US, *range(12)],
        [0.0, -0.0, float("nan"), float("inf"), -float("inf"), 5e-324, 1.7976931348623157e308,
         *range(11)],
        [None, "", "m", *reversed(ODD_TEXT)],
        ['{"station": "Cầu Cái Nhúc"}', None, "{}", '{"a": "😀", "b": [1, 2.5]}', *ODD_TEXT],
        strict=False,
    ))
])


ACCELERATE = pytest.mark.parametrize("accelerate", [True, False], ids=["compiled", "plain"])


def encoded(events: EventBatch, accelerate: bool, *, ordinal: bool = False) -> bytes:
    with accelerated(accelerate):
        return bytes(encode_events(events, ordinal=ordinal))


@ACCELERATE
@pytest.mark.parametrize("ordinal", [False, True])
def test_edge_cases_match_the_reference(ordinal: bool, accelerate: bool) -> None:
    assert encoded(EDGE, accelerate, ordinal=ordinal) == reference(EDGE, ordinal=ordinal)


@ACCELERATE
@pytest.mark.parametrize("ordinal", [False, True])
def test_realistic_batch_matches_the_reference(ordinal: bool, accelerate: bool) -> None:
    events = make_batch(2000, seed=4)
    assert encoded(events, accelerate, ordinal=ordinal) == reference(events, ordinal=ordinal)


@ACCELERATE
def test_columns_of_nulls_and_empty_batches(accelerate: bool) -> None:
    nulls = batch([("d", "e", "k", 1, 2.0, None, None)] * 20)
    assert encoded(nulls, accelerate) == reference(nulls)
    assert encoded(EventBatch(), accelerate) == SIGNATURE + b"\xff\xff"
    assert encoded(EventBatch(), accelerate, ordinal=True) == SIGNATURE + b"\xff\xff"


@ACCELERATE
def test_large_batch(accelerate: bool) -> None:
    """Past 32768 rows the msgpack list (a marker after each value) needs its 5-byte header."""
    events = make_batch(40_000, seed=5)
    events.attrs = [f'{{"n": {i}}}' if i % 3 else None for i in range(40_000)]
    events.unit = [None if i % 7 == 0 else 'a "' for i in range(40_000)]
    assert encoded(events, accelerate, ordinal=True) == reference(events, ordinal=True)


@ACCELERATE
@pytest.mark.parametrize("column", ["device_id", "unit", "attrs"])
@pytest.mark.parametrize("value", [1234, 5, 1.5, True, b"bytes", [1]])
def test_text_columns_hold_only_text(column: str, value: object, accelerate: bool) -> None:
    events = batch([("d", "e", "k", 1, 2.0, None, None)] * 3)
    getattr(events, column)[1] = value
    with pytest.raises(TypeError):
        encoded(events, accelerate)


text = st.text(max_size=40) | st.sampled_from(ODD_TEXT[:12])
rows = st.tuples(text, text, text, st.integers(MIN_TS, MAX_TS), st.floats(),
                 st.none() | text, st.none() | text)


@ACCELERATE
@settings(max_examples=150, deadline=None)
@given(st.lists(rows, max_size=30), st.booleans())
def test_any_batch_matches_the_reference(accelerate: bool, rows: list[tuple], ordinal: bool) -> None:
    events = batch(rows)
    assert encoded(events, accelerate, ordinal=ordinal) == reference(events, ordinal=ordinal)
