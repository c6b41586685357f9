"""The compiled COPY row writer (ioc/fast/copy_rows.py) against its reference, the struct
encoder beside the dispatch (ioc/storage/copy_binary.py): the same bytes for any batch.

Every column shape the encoder takes: plain lists, a TextColumn (values lying in one buffer
among other bytes, as the decoder's scan hands over event ids and attrs), a CodedList (few
distinct values by code, as devices, kinds and units), with None units and attrs, non-ASCII
and odd text, ts ties, any float; with and without the ordinal field. The format itself is
spelled out once more in tests/unit/storage/test_copy_binary.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.model import CodedList, EventBatch, TextColumn
from ioc.storage.copy_binary import _encode_plain, encode_events
from tests.unit.fast import accelerated

ODD = ["", "a", "ü", "€", "😀", "µg/m³", "Cầu Cái Nhúc", 'say "hi"', "back\\slash", "nul\x00",
       "\u2028", "x" * 31, "x" * 32, "é" * 127 + "x", "x" * 300]
TEXT = st.text(max_size=12) | st.sampled_from(ODD)
MIN_TS, MAX_TS = -210_000_000_000_000_000, 9_000_000_000_000_000_000


@st.composite
def column(draw: st.DrawFn, values: list[str | None]) -> object:
    """``values`` as a plain list, a TextColumn or a CodedList."""
    shape = draw(st.sampled_from(["list", "text", "coded"]))
    if shape == "list":
        return values
    if shape == "coded":
        distinct = list(dict.fromkeys(values))
        copies = draw(st.integers(1, 2))  # concatenated batches leave values repeated
        codes = [distinct.index(v) + len(distinct) * draw(st.integers(0, copies - 1))
                 for v in values]
        return CodedList(distinct * copies, np.array(codes, np.int64))
    order = draw(st.permutations(range(len(values))))  # values need not lie in order
    buf = bytearray()
    start = np.full(len(values), -1, np.int64)
    size = np.full(len(values), -1, np.int64)
    for i in order:
        buf += draw(st.binary(max_size=3))  # other bytes of the messages around the value
        if values[i] is not None:
            data = values[i].encode()
            start[i], size[i] = len(buf), len(data)
            buf += data
    return TextColumn(np.frombuffer(bytes(buf), np.uint8), start, size)


@st.composite
def batches(draw: st.DrawFn) -> EventBatch:
    n = draw(st.integers(0, 25))
    texts = st.lists(TEXT, min_size=n, max_size=n)
    maybe = st.lists(st.none() | TEXT, min_size=n, max_size=n)
    few = st.lists(st.sampled_from(["hg-vt-wl-001", "hg-nb-rain-002", "Vị Thanh", ""]),
                   min_size=n, max_size=n)
    ts = draw(st.lists(st.integers(-3, 3) | st.integers(MIN_TS, MAX_TS), min_size=n, max_size=n))
    value = draw(st.lists(st.floats(), min_size=n, max_size=n))
    return EventBatch(
        device_id=draw(column(draw(few | texts))),
        event_id=draw(column(draw(texts))),
        kind=draw(column(draw(few | texts))),
        ts=np.array(ts, np.int64),
        value=np.array(value, np.float64),
        unit=draw(column(draw(maybe))),
        attrs=draw(column(draw(maybe))),
    )


def plain_lists(events: EventBatch) -> EventBatch:
    return EventBatch(*(list(c) for c in (events.device_id, events.event_id, events.kind)),
                      events.ts, events.value, list(events.unit), list(events.attrs))


@settings(max_examples=300, deadline=None)
@given(batches(), st.booleans())
def test_the_compiled_writer_and_the_struct_encoder_write_the_same_bytes(
        events: EventBatch, ordinal: bool) -> None:
    with accelerated(True):
        compiled = bytes(encode_events(events, ordinal=ordinal))
        as_lists = bytes(encode_events(plain_lists(events), ordinal=ordinal))
    with accelerated(False):
        plain = bytes(encode_events(events, ordinal=ordinal))
    assert compiled == plain == _encode_plain(events, ordinal=ordinal) == as_lists
