"""The shapes every stage of the data path passes on, and nothing else.

A source hands the pipeline transport messages (:class:`RawMessage`, or a Kafka partition's
as :class:`PartitionMessages`); the decoder makes of them an :class:`EventBatch` of columns and
a :class:`DeadLetter` for each input that could not become an event; the writer, the rule
engine and the latest values read that batch. Its text columns are plain lists of str or the
two shapes that spare making a str per event (:class:`TextColumn`, :class:`CodedList`; see
:mod:`ioc.model.columns`).

No I/O and nothing from the rest of ``ioc``: every layer imports these shapes (the bottom
rank of tests/unit/test_layering.py), so they must not pull in a transport, the database or
a stage; each stage's tests can build them by hand.
"""

from ioc.model.batch import EVENT_COLUMNS, DeadLetter, EventBatch
from ioc.model.columns import CodedList, CodedValues, TextColumn, TextValues
from ioc.model.messages import PartitionMessages, RawMessage

__all__ = [
    "EVENT_COLUMNS",
    "CodedList",
    "CodedValues",
    "DeadLetter",
    "EventBatch",
    "PartitionMessages",
    "RawMessage",
    "TextColumn",
    "TextValues",
]
