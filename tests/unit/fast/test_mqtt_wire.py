"""The bulk MQTT reader: packets cut anywhere come out whole, and bytes that are not MQTT give
a ProtocolError, never another exception. (Its parity with paho, end to end through the
service: tests/integration/ingest/test_mqtt_bulk.py.)"""

from __future__ import annotations

import contextlib
import itertools
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.fast.mqtt_wire import PacketReader, Packets, ProtocolError, pubacks
from tests.support.mqtt_wire import PINGRESP, packet, publish, some_properties

topics = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)
messages = st.tuples(
    topics,
    st.binary(max_size=300) | st.binary(min_size=20000, max_size=20200),
    st.none() | st.integers(1, 65535),
    st.booleans(),
    st.booleans(),
)


def read_all(stream: bytes, cuts: list[int]) -> Packets:
    reader = PacketReader()
    got = Packets()
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    for a, b in itertools.pairwise(bounds):
        out = reader.feed(stream[a:b])
        got.payloads += out.payloads
        got.topics += out.topics
        got.mids += out.mids
        got.others += out.others
    return got


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, max_size=30), st.lists(st.integers(0, 10**7), max_size=40),
       st.integers(0, 30))
def test_packets_cut_anywhere_come_out_whole(msgs, cuts, ping_at) -> None:
    parts = [publish(t, p, mid, dup=dup, properties=some_properties() if props else b"")
             for t, p, mid, dup, props in msgs]
    parts.insert(min(ping_at, len(parts)), PINGRESP)
    got = read_all(b"".join(parts), cuts)
    assert got.payloads == [p for _, p, _, _, _ in msgs]
    assert got.topics == [t for t, _, _, _, _ in msgs]
    assert got.mids == [mid for _, _, mid, _, _ in msgs if mid is not None]
    assert got.others == [(0xD0, b"")]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 500), max_size=5))
def test_bytes_that_are_not_mqtt_raise_only_protocol_errors(data, cuts) -> None:
    with contextlib.suppress(ProtocolError):
        read_all(data, cuts)


@pytest.mark.parametrize(("stream", "why"), [
    (packet(0x34, b"\x00\x01t\x00\x01\x00{}"), "QoS 2"),
    (packet(0x32, b"\x00\x01t\x00\x00\x00{}"), "packet id 0"),
    (packet(0x30, b"\x00\x09t\x00"), "shorter"),
    (packet(0x32, b"\x00\x01t\x00\x01\x05\x01"), "properties run past"),
    (b"\x30\xff\xff\xff\xff\x01", "longer than four bytes"),
])
def test_malformed_publishes_are_refused_with_a_reason(stream: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        PacketReader().feed(stream)


def test_a_large_packet_arriving_in_pieces_is_read_once_whole() -> None:
    big = publish("ioc/v1/events/a", b"x" * 300_000, 7)
    reader = PacketReader()
    outs = [reader.feed(big[i:i + 1000]) for i in range(0, len(big), 1000)]
    assert [len(o.payloads) for o in outs].count(1) == 1
    assert outs[-1].payloads == [b"x" * 300_000] and outs[-1].mids == [7]


def test_pubacks_are_paho_s_packets_back_to_back() -> None:
    mids = [1, 258, 40000, 65535]
    assert pubacks(mids) == b"".join(struct.pack("!BBH", 0x40, 2, m) for m in mids)
