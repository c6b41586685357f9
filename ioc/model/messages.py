"""Transport messages as the sources hand them to the decoder, before any parsing.

Every source (MQTT, Kafka, HTTP) hands the pipeline :class:`RawMessage`; Kafka's come as
:class:`PartitionMessages`, the same held as columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, overload


class RawMessage(NamedTuple):
    """One transport message as received, before any parsing.

    A NamedTuple rather than a frozen dataclass: sources build one per message, and a tuple
    is four times cheaper to make.
    """

    payload: bytes
    source: str  # "mqtt" | "kafka" | "http"
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None  # Kafka key (device_id) if any


class PartitionMessages(Sequence[RawMessage]):
    """Consecutive messages of one Kafka partition, held as columns.

    The Kafka source hands over thousands of messages per poll and the pipeline may hold
    200k of them: as a RawMessage each, they were most of what the garbage collector
    traversed (a tuple subclass is never untracked), costing more CPU than decoding. Lists
    of bytes are not traversed. Indexing builds a RawMessage on demand (dead letters, logs).
    """

    __slots__ = ("keys", "offsets", "partition", "payloads", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        payloads: list[bytes],
        keys: list[bytes | None],
        offsets: list[int],
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.payloads = payloads
        self.keys = keys
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.payloads)

    @overload
    def __getitem__(self, index: int) -> RawMessage: ...

    @overload
    def __getitem__(self, index: slice) -> PartitionMessages: ...

    def __getitem__(self, index: int | slice) -> RawMessage | PartitionMessages:
        if isinstance(index, slice):
            return PartitionMessages(self.topic, self.partition, self.payloads[index],
                                     self.keys[index], self.offsets[index])
        return RawMessage(self.payloads[index], "kafka", self.topic, self.partition,
                          self.offsets[index], self.keys[index])
