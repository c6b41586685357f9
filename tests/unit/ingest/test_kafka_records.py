"""CRC checks of the lean record hand-over: the same batches pass and fail as with aiokafka's own."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.structs import TopicPartition

from ioc.ingest.kafka_records import _first_bad_batch, installed, lean_records

TP = TopicPartition("ioc.events", 0)
PER_BATCH = 5


def v2_batch(base_offset: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 20)
    for i in range(PER_BATCH):
        builder.append(i, timestamp=None, key=b"hg-vt-wl-001", value=b'{"v":%d}' % i, headers=[])
    raw = bytearray(builder.build())
    struct.pack_into(">q", raw, 0, base_offset)  # not covered by the CRC
    return bytes(raw)


def fetched(raw: bytes, *, lean: bool) -> Iterator:
    """What a consumer iterates over for a fetch of ``raw`` (lean or aiokafka's own path)."""
    assert installed()
    return fetcher.PartitionRecords(TP, fetcher.MemoryRecords(raw), None, 0, None,
                                    lean_records if lean else None, True,
                                    fetcher.READ_UNCOMMITTED)


def offsets_until_error(records: Iterator) -> tuple[list[int], bool]:
    got = []
    try:
        for record in records:
            got.append(record.offset)
    except CorruptRecordException:
        return got, True
    return got, False


def test_good_batches_pass_and_a_partial_last_batch_is_left_for_the_next_fetch() -> None:
    batches = [v2_batch(k * PER_BATCH) for k in range(3)]
    raw = b"".join(batches) + batches[0][:40]
    assert _first_bad_batch(raw) == -1
    assert offsets_until_error(fetched(raw, lean=True)) == (list(range(3 * PER_BATCH)), False)


@pytest.mark.parametrize("where", ["header", "record", "last byte"])
def test_a_corrupt_batch_fails_where_aiokafka_fails_it(where: str) -> None:
    raw = bytearray(b"".join(v2_batch(k * PER_BATCH) for k in range(3)))
    second = len(v2_batch(0))
    position = {"header": second + 23, "record": second + 70, "last byte": 2 * second - 1}[where]
    raw[position] ^= 0x01
    assert _first_bad_batch(bytes(raw)) == 1
    lean = offsets_until_error(fetched(bytes(raw), lean=True))
    assert lean == (list(range(PER_BATCH)), True)
    assert lean == offsets_until_error(fetched(bytes(raw), lean=False))


def test_older_formats_are_left_to_aiokafka() -> None:
    builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    for i in range(3):
        builder.append(i, timestamp=None, key=b"k", value=b"v")
    raw = bytes(builder.build())
    assert _first_bad_batch(raw) is None
    assert offsets_until_error(fetched(raw, lean=True)) == ([0, 1, 2], False)
