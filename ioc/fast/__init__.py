"""Accelerators: compiled (numba) or hand-written code that does a step of the data path faster
than the library made for it.

An accelerator here is an optimisation, never a definition: each step it speeds up is defined
by a plain-library reference (msgspec, numpy and the standard library), which the service runs when
the accelerators are off. The rule for every module of this package:

- **beside its reference**: the code that dispatches to the accelerator holds the reference
  next to it, and the accelerator's docstring names it;
- **parity-tested**: a hypothesis property pits the two against each other
  (``tests/unit/fast/``): the same bytes, the same codes, the same decode results;
- **an off switch**: ``IOC_ACCELERATE=false`` (``Settings.accelerate``) runs the references
  end to end. The service sets the switch once at start (:func:`set_enabled`); the
  dispatching code reads it per call (a batch, a group of messages), never in a loop over
  events.

The accelerators, each with its reference:

- :func:`.scan.scan` decodes a group of single-event messages column-wise (``decode_uniform``).
  Reference: the message-by-message decode in ``ioc/ingest/decode.py`` (msgspec's typed decode,
  stdlib ``json`` on the strict slow path), which also takes every group the scan refers.
- :func:`.scan.screen` marks the messages msgspec's typed decode may be trusted with.
  Reference: ``_plain_screen`` in ``ioc/ingest/decode.py``.
- :func:`.scan.nesting`: how deep the brackets of a text nest. Reference: ``_plain_nesting``
  there, exact.
- :func:`.codes.buffer_codes` codes device ids by their bytes with a hash table. Reference: the
  dict pass ``_dict_codes`` there, the same codes in the same first-appearance order.
- :func:`.copy_rows.write_rows` writes the rows of binary COPY data from column buffers.
  Reference: ``_encode_plain`` in ``ioc/storage/copy_binary.py``, ``struct`` per field, the
  same bytes.
- :func:`.threshold.threshold_scan` runs a threshold rule over its stream in one pass.
  Reference: the numpy path of ``RuleEngine._evaluate_rule`` in ``ioc/rules/engine.py``
  (``_hot_events``, ``kernels.threshold``, ``RuleState.diff``): the same transitions and state.
- :class:`.mqtt_wire.PacketReader` splits whole socket reads into MQTT PUBLISH packets, and
  :func:`.mqtt_wire.pubacks` writes a batch's acks as one buffer. Reference: paho-mqtt reading
  and acking packet by packet (``ioc/ingest/mqtt.py`` runs either): the same messages stored,
  the same packet ids acked.

The screen's reference is not the same function but a plainer, more cautious one: UTF-8
checked by Python's codec over the whole message, nesting counted exactly, and substring
searches that send to the exact slow path whatever the compiled screen would look at closer
(an escape of an ASCII character or a surrogate, a 41-digit run, a 3-digit exponent, text
ending in ``±HHMM``). What it lets through and the compiled screen refuses (control
characters, bad escapes), msgspec's typed decode refuses by itself. Decoding gives the same
answer either way; only the share of messages on the slow path differs.

Nothing here imports the rest of ``ioc``: accelerators take and fill numpy arrays.
"""

from __future__ import annotations

_enabled = True


def enabled() -> bool:
    """Whether the accelerators are used (the default); read by the dispatching code per call."""
    return _enabled


def set_enabled(on: bool) -> None:
    """Use the accelerators or, with False, their plain references, process-wide: set once at
    start from ``Settings.accelerate`` (``IOC_ACCELERATE``)."""
    global _enabled
    _enabled = bool(on)
