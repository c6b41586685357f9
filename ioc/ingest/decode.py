"""Turn transport messages (MQTT, Kafka, HTTP) into a columnar EventBatch plus dead letters.

Every source calls :func:`decode` on a micro-batch of :class:`RawMessage` (Kafka's come as
:class:`PartitionMessages`, the same held as columns). Nearly all traffic is one event per
message in the single-reading form with an RFC 3339 ts: such a micro-batch is decoded
column-wise (:func:`_uniform`) -- one compiled scan of the joined messages
(:mod:`ioc.fast.scan`: JSON grammar, UTF-8, ts and value parsed, strings located), then
the checks of distinct values (devices, kinds, units) and numpy ranges. If any
message of the call does not fit, or any check fails, the call is decoded message by
message instead, which gives the exact reasons; the column-wise path only ever accepts what
that path accepts, with the same columns. Message by message, a screen first marks
the messages msgspec can be trusted with (below); those go through one typed msgspec decode
per message and a handful of cached checks per event, appending straight into column lists.
The rest, and any message the typed decoder refuses, take the slow path: a strict generic
decode (stdlib ``json``, numbers kept as literals) coerced back into the same shape with
markers saying what was wrong, so all paths share one set of checks and one order of
reasons. Bad input becomes a :class:`DeadLetter`; nothing raises and a bad event never
holds back the good ones in the same call.

The message-by-message path is the reference. The compiled parts are accelerators
(:mod:`ioc.fast`): the column-wise scan, the hash table coding its device ids (reference: the
dict pass :func:`_dict_codes`), and the screen and nesting count that the message-by-message
path itself needs for correctness -- so those two have plain references here too
(:func:`_plain_screen`, more cautious; :func:`_plain_nesting`, exact) rather than being
compiled code the reference depends on. With ``IOC_ACCELERATE=false`` (``fast.enabled()``
false) no compiled code runs: no call is decoded column-wise, and the screen and nesting
count are the plain ones.

Strict, and the same answer on every path: the verdict, reason, detail and columns depend on
the message alone, whichever path decodes it and whatever shares its batch (a hypothesis
property pits every path against a reference written from this contract).

- The payload is JSON (RFC 8259) or ``bad_json``: all of it UTF-8 (msgspec does not check
  what it skips, so the screen does), no NaN/Infinity literals, no lone surrogate escape
  (PostgreSQL refuses them), at most MAX_JSON_DEPTH levels deep -- a fixed bound, because
  a parser's recursion limit depends on the caller's stack. Details name what is wrong:
  stdlib json's message with the byte offset, the literal, the escape.
- A repeated key: the last occurrence wins, at the top level and in ``values`` (as in
  jsonb and Python's json); the others must still be JSON.
- Numbers are judged by their decimal value, never refused by a parser's limits first: a
  value beyond a double is ``not_finite`` (even as a 5,000-digit integer), an epoch-ms ts
  beyond years 1-9999 is ``bad_timestamp``, and a zero reading is stored as +0.0 (``-0``
  parses to -0.0 on some paths).
- ts text is strict RFC 3339: the offset is Z or ±HH:MM (msgspec also takes ±HHMM; we do
  not, on any path), fractions beyond the µs rounded half up.
- attrs are stored as sent (their JSON text is copied into jsonb), so all of that text must
  be storable, values under repeated keys included: no ``\\u0000``, numbers within
  PostgreSQL's numeric range (131072 digits before the point, 16383 after), nesting counted
  on the text. Anything the database would refuse is a ``schema`` dead letter here, so
  nothing refusable reaches a COPY.

Order of checks for one event object (the first failure is the reason): device_id (missing,
type, format), topic/key match, known device, ts (missing, parse, range, age), attrs (type,
size, depth, ``\\u0000``, numbers), then the reading(s): kind, value (type, finite, camera
confidence), event_id, unit. In the multi-reading form each reading is judged alone, so one
bad entry rejects only itself.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Annotated, Any

import msgspec
import numpy as np

from ioc import fast
from ioc.fast import scan
from ioc.fast.codes import buffer_codes
from ioc.model import CodedList, DeadLetter, EventBatch, PartitionMessages, RawMessage, TextColumn

BAD_JSON = "bad_json"
SCHEMA = "schema"
BAD_TIMESTAMP = "bad_timestamp"
TOO_OLD = "too_old"
TOO_FAR_FUTURE = "too_far_future"
NOT_FINITE = "not_finite"
TOO_LARGE = "too_large"
TOPIC_MISMATCH = "topic_mismatch"
UNKNOWN_DEVICE = "unknown_device"
REASONS = (
    BAD_JSON,
    SCHEMA,
    BAD_TIMESTAMP,
    TOO_OLD,
    TOO_FAR_FUTURE,
    NOT_FINITE,
    TOO_LARGE,
    TOPIC_MISMATCH,
    UNKNOWN_DEVICE,
)

MQTT_TOPIC_PREFIX = "ioc/v1/events/"
_PREFIX_LEN = len(MQTT_TOPIC_PREFIX)

# uuid5(NAMESPACE_URL, "https://ioc-ingest/event-id"); see derive_event_id.
EVENT_ID_NAMESPACE = uuid.UUID("c33aca94-aa85-5120-9c4f-ffc131a3c044")

MAX_ID_CHARS = 128
MAX_UNIT_CHARS = 32
# jsonb has no limits we would hit first; these keep one event's attrs from bloating a batch.
MAX_ATTRS_BYTES = 64 * 1024
MAX_ATTRS_DEPTH = 16
# Any payload nested deeper is bad_json: no event needs more, and a fixed bound, not a
# parser's recursion limit (which depends on the caller's stack), decides.
MAX_JSON_DEPTH = 64
# What PostgreSQL's numeric, and so a jsonb number, holds: digits before and after the
# decimal point, and the largest exponent its parser takes (it refuses even 0e1073741823).
PG_NUMERIC_MAX_INT_DIGITS = scan.PG_NUMERIC_MAX_INT_DIGITS
PG_NUMERIC_MAX_SCALE = scan.PG_NUMERIC_MAX_SCALE
PG_NUMERIC_MAX_EXPONENT = 1_073_741_822

_DEVICE_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_KIND_RE = re.compile(r"[a-z0-9._-]{1,64}")
_CAMERA_PREFIX = "camera."
# Range of datetime (years 1..9999), which is also inside PostgreSQL's timestamptz.
_MIN_US = -62_135_596_800_000_000
_MAX_US = 253_402_300_799_999_999
_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True, frozen=True)
class DecodeLimits:
    """What the decoder accepts; events outside become dead letters with the matching reason."""

    max_payload_bytes: int = 256 * 1024
    max_event_age_s: float = 365 * 86400  # older than now - this -> too_old
    max_future_skew_s: float = 3600  # newer than now + this -> too_far_future
    known_devices: frozenset[str] | None = None  # when set, other device ids -> unknown_device


@dataclass(slots=True)
class DecodeResult:
    """Events decoded from one call, the dead letters, and where each event came from."""

    events: EventBatch
    dead: list[DeadLetter]
    message_index: np.ndarray  # int32, for each event the index of the RawMessage it came from
    rejected: dict[str, int]  # reason -> count (for metrics)


def decode(messages: Sequence[RawMessage], limits: DecodeLimits, now_us: int | None = None) -> DecodeResult:
    """Decode a micro-batch of transport messages into events and dead letters.

    Never raises for any payload: every message yields at least one event or one dead letter.
    ``now_us`` (µs since the Unix epoch) anchors the too_old / too_far_future limits; it
    defaults to the wall clock and is a parameter so that tests and replays are reproducible.
    """
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    uniform = decode_uniform([messages], limits, now_us)
    if uniform is not None:
        return DecodeResult(events=uniform, dead=[],
                            message_index=np.arange(len(messages), dtype=np.int32), rejected={})
    return _decode_each(_Run(messages, limits, now_us))


def decode_uniform(
    parts: Sequence[Sequence[RawMessage]], limits: DecodeLimits, now_us: int
) -> EventBatch | None:
    """Decode several micro-batches column-wise as one, if every message is one valid event.

    Returns one event per message, in order, or None when any message needs
    :func:`decode` (which then gives the reasons), and always None with the accelerators
    off. Batching a thousand or so messages per call pays for numpy's per-call overhead; far
    more stops fitting in the CPU caches.
    """
    if not fast.enabled():
        return None
    payloads: list[bytes] = []
    expected: list[str | None] = []
    for messages in parts:
        more_payloads, more_expected = _payloads_and_expected(messages)
        payloads += more_payloads
        expected += more_expected
    if not payloads:
        return None
    return _uniform(_Run((), limits, now_us), payloads, expected)


def _decode_each(run: _Run) -> DecodeResult:
    """Decode message by message: every reason exact, bad events isolated from good ones."""
    messages = run.messages
    feed = run.feed
    if isinstance(messages, PartitionMessages):
        clean = _screen(messages.payloads)
        for index, (payload, key, ok) in enumerate(
                zip(messages.payloads, messages.keys, clean, strict=True)):
            feed(index, payload, "kafka", None, key, ok)
    else:
        clean = _screen([message.payload for message in messages])
        for index, (message, ok) in enumerate(zip(messages, clean, strict=True)):
            feed(index, message.payload, message.source, message.topic, message.key, ok)
    return run.result()


def _screen(payloads: list[bytes]) -> list[bool]:
    """Per payload, whether the typed msgspec decode may be trusted with it (see
    :func:`ioc.fast.scan.screen`): one compiled pass over the payloads joined, or with the
    accelerators off :func:`_plain_screen` of each."""
    n = len(payloads)
    if n == 0:
        return []
    if not fast.enabled():
        return list(map(_plain_screen, payloads))
    lengths = np.fromiter(map(len, payloads), np.int64, n)
    ends = np.cumsum(lengths)
    clean = np.empty(n, np.bool_)
    scan.screen(np.frombuffer(b"".join(payloads), np.uint8), ends - lengths, ends,
                MAX_JSON_DEPTH, clean)
    return clean.tolist()


def derive_event_id(device_id: str, kind: str, ts_us: int) -> str:
    """The event_id of a reading sent without one, so that re-sent readings deduplicate.

    ``uuid5(EVENT_ID_NAMESPACE, f"{device_id}|{kind}|{ts_us}")`` with ``ts_us`` the event time
    in integer microseconds since the Unix epoch (UTC) -- the same reading sent as RFC 3339
    with any offset or as epoch milliseconds gets the same id. ``|`` cannot occur in a valid
    device_id or kind. In SQL (uuid-ossp): ``uuid_generate_v5(ns, device_id || '|' || kind
    || '|' || ts_us)``. Hand-rolled rather than ``uuid.uuid5`` because it runs per event.
    """
    h = _NAMESPACE_SHA1.copy()
    h.update(f"{device_id}|{kind}|{ts_us}".encode())
    x = h.hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_UUID_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


_NAMESPACE_SHA1 = hashlib.sha1(EVENT_ID_NAMESPACE.bytes, usedforsecurity=False)
_UUID_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}

_AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
_NULL_RAW = msgspec.Raw(b"null")


class _Event(msgspec.Struct, gc=False):
    """The shape of one event object, covering both the single and the multi-reading form.

    Required fields default to UNSET so that "missing" and "null" give different details.
    The slow path builds these by hand and may put a :class:`_Bad` in any field.
    """

    device_id: str | None = None
    kind: str | msgspec.UnsetType = msgspec.UNSET
    ts: _AwareDatetime | int | float | msgspec.UnsetType = msgspec.UNSET
    value: float | msgspec.UnsetType = msgspec.UNSET
    event_id: str | None = None
    unit: str | dict[str, str] | None = None
    units: dict[str, str] | None = None
    attrs: msgspec.Raw = _NULL_RAW
    values: dict[str, float] | None = None


_MESSAGE_DECODER = msgspec.json.Decoder(_Event | list[_Event])
# Errors a decode may raise for hostile bytes: msgspec's own, invalid UTF-8 inside strings
# (raised as UnicodeDecodeError), and nesting beyond msgspec's recursion limit.
_DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class _Bad:
    """A field value the slow path found unusable, carrying the reason it must be rejected with."""

    __slots__ = ("detail", "reason")

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


class _Number:
    """A JSON number on the slow path, as its literal: judged by its decimal value, never
    rounded or refused by a parser first (a 5,000-digit integer is a number, too big)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _jtype(value: Any) -> str:
    """The JSON name of a decoded value's type, for details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | _Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _show(value: object, limit: int = 40) -> str:
    """A short repr of user input, so one detail stays one short line."""
    return _clip(repr(value), limit)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _iso(us: int) -> str:
    if not _MIN_US <= us <= _MAX_US:
        return f"{us} µs from the Unix epoch"
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _device_problem(device: object) -> _Bad | None:
    if type(device) is _Bad:
        return device
    if not isinstance(device, str):
        return _Bad(SCHEMA, f"device_id: expected a string, got {_jtype(device)}")
    if _DEVICE_RE.fullmatch(device) is None:
        return _Bad(
            SCHEMA,
            f"device_id: {_show(device)} must be 1-128 characters of A-Z a-z 0-9 . _ : -",
        )
    return None


def _kind_problem(kind: object, field: str = "kind") -> _Bad | None:
    if type(kind) is _Bad:
        return kind
    if kind is msgspec.UNSET:
        return _Bad(SCHEMA, f"{field}: missing")
    if not isinstance(kind, str):
        return _Bad(SCHEMA, f"{field}: expected a string, got {_jtype(kind)}")
    if _KIND_RE.fullmatch(kind) is None:
        return _Bad(SCHEMA, f"{field}: {_show(kind)} must be 1-64 characters of a-z 0-9 . _ -")
    return None


def _value_problem(value: object, field: str) -> _Bad:
    """Why a value that is not a finite float was refused."""
    if type(value) is _Bad:
        return value
    if value is msgspec.UNSET:
        return _Bad(SCHEMA, f"{field}: missing")
    if type(value) is float:
        return _Bad(NOT_FINITE, f"{field}: {value!r} is not a finite number")
    return _Bad(SCHEMA, f"{field}: expected a number, got {_jtype(value)}")


def _text_problem(text: object, field: str, min_chars: int, max_chars: int) -> _Bad | None:
    """Short free text (event_id, unit): bounded, and storable in a PostgreSQL text column."""
    if type(text) is _Bad:
        return text
    if not isinstance(text, str):
        return _Bad(SCHEMA, f"{field}: expected a string, got {_jtype(text)}")
    if not min_chars <= len(text) <= max_chars:
        return _Bad(SCHEMA, f"{field}: must be {min_chars}-{max_chars} characters")
    if not text.isprintable():
        return _Bad(SCHEMA, f"{field}: contains control or unpaired surrogate characters")
    return None


# Escapes in JSON text: a backslash and what it escapes, one by one from the left, so that an
# escaped backslash is never read as the start of an escape.
_ESCAPE = re.compile(r"\\(?:u([0-9a-fA-F]{4})|.)", re.S)
_NUL_ESCAPE = re.compile(r"\\(?:u0000|.)", re.S)
_NUMBER_OR_STRING = re.compile(
    r'"(?:[^"\\]|\\.)*"|-?(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([-+]?[0-9]+))?', re.S)
# An exponent of four digits or more, or a text long enough for 15,000 digits after a point:
# the only ways out of PostgreSQL's numeric range (see _numeric_problem).
_MAYBE_HUGE_NUMBER = re.compile(r"[eE][-+]?0*[1-9][0-9]{3}")
_HUGE_FRACTION_CHARS = PG_NUMERIC_MAX_SCALE - 1000


def _nesting(data: bytes) -> int:
    """How deep arrays and objects nest in a text (see :func:`ioc.fast.scan.nesting`);
    :func:`_plain_nesting` with the accelerators off."""
    if not fast.enabled():
        return _plain_nesting(data)
    return int(scan.nesting(np.frombuffer(data, np.uint8), 0, len(data)))


# A string as scan.nesting skips it: from a quote to the next quote not escaped by a backslash
# (a backslash escapes any next byte), or to the end.
_SKIPPED_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"?', re.S)
_NOT_BRACKET = bytes(c for c in range(256) if c not in b"[]{}")
_DEPTH_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def _plain_nesting(data: bytes) -> int:
    """The reference of :func:`ioc.fast.scan.nesting`, exact for any bytes: the most brackets
    open at once once strings are taken out."""
    data = bytes(data)
    # Without a backslash a string runs from a quote to the next: every other piece between.
    outside = (_SKIPPED_STRING.sub(b"", data) if b"\\" in data
               else b"".join(data.split(b'"')[0::2]))
    brackets = outside.translate(None, _NOT_BRACKET)
    return max(accumulate(map(_DEPTH_STEP.__getitem__, brackets), initial=0))


# What the compiled screen (ioc.fast.scan._clean) looks at closer, found anywhere in the text:
# a \u escape of an ASCII character (\u0000, or a timestamp in disguise) or of a surrogate;
# and, in the text with every digit made 0, a run of 41 digits, a three-digit exponent or a
# string ending in an offset without a colon (substring searches, several times cheaper than
# one regular expression trying each at every byte).
_DOUBTFUL_ESCAPE = re.compile(rb"\\u(?:00[0-7]|[dD][89a-fA-F])")
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DIGIT_RUN = b"0" * 41
_BIG_EXPONENT = re.compile(rb"0[eE][-+]?000")


def _plain_screen(payload: bytes) -> bool:
    """The reference of :func:`ioc.fast.scan.screen` for one payload, more cautious: UTF-8
    checked over the whole payload, nesting exactly, and anything doubtful (above) sends the
    message to the slow path. What it lets through and the compiled screen refuses (control
    characters, bad escapes, unterminated strings), msgspec's typed decode refuses itself."""
    payload = bytes(payload)
    try:
        str(payload, "utf-8")
    except UnicodeDecodeError:
        return False
    if b"\\u" in payload and _DOUBTFUL_ESCAPE.search(payload):
        return False
    shape = payload.translate(_DIGITS_AS_ZERO)
    if (_DIGIT_RUN in shape or b'+0000"' in shape or b'-0000"' in shape
            or ((b"0e" in shape or b"0E" in shape) and _BIG_EXPONENT.search(shape))):
        return False
    return not (payload.count(b"[") + payload.count(b"{") > MAX_JSON_DEPTH
                and _plain_nesting(payload) > MAX_JSON_DEPTH)


def _lone_surrogate(text: str) -> str | None:
    """The first ``\\uXXXX`` escape of a UTF-16 surrogate not in a high-low pair (jsonb and
    any UTF-8 text refuse them), as ``\\udXXX``; None if there is none."""
    pending = -1  # end of a high surrogate escape waiting for its low half
    for match in _ESCAPE.finditer(text):
        hexa = match.group(1)
        code = int(hexa, 16) if hexa else -1
        if pending >= 0:
            if match.start() == pending and 0xDC00 <= code <= 0xDFFF:
                pending = -1
                continue
            return f"\\u{int(text[pending - 4:pending], 16):04x}"
        if 0xD800 <= code <= 0xDBFF:
            pending = match.end()
        elif 0xDC00 <= code <= 0xDFFF:
            return f"\\u{code:04x}"
    return None if pending < 0 else f"\\u{int(text[pending - 4:pending], 16):04x}"


def _numeric_problem(whole: str, fraction: str | None, exponent: str | None) -> bool:
    """Whether a JSON number is outside PostgreSQL's numeric (what jsonb stores numbers as):
    more than 131072 digits before the decimal point, more than 16383 after it (the digits
    written after the point count, less the exponent), or an exponent PostgreSQL's parser
    refuses."""
    fraction = fraction or ""
    exp_text = (exponent or "0").lstrip("+")
    negative = exp_text.startswith("-")
    exp_digits = exp_text.lstrip("-").lstrip("0") or "0"
    if len(exp_digits) > 10:
        return True
    exp = -int(exp_digits) if negative else int(exp_digits)
    if abs(exp) > PG_NUMERIC_MAX_EXPONENT:
        return True
    if len(fraction) - exp > PG_NUMERIC_MAX_SCALE:
        return True
    digits = whole + fraction
    first = len(digits) - len(digits.lstrip("0"))
    if first == len(digits):  # zero
        return False
    return len(whole) - 1 - first + exp >= PG_NUMERIC_MAX_INT_DIGITS  # 10**that > the range


def _attrs_text(raw: msgspec.Raw | bytes, seen: dict[bytes, str | None],
                numbers: bool = True) -> str | _Bad | None:
    """The attrs JSON text to store (as sent), None for null, or why it cannot be stored.

    The text is copied to the database as it is, so every part of it must be valid for jsonb,
    values under a repeated key included. Checked in this order: an object, the size, the
    nesting, ``\\u0000``, numbers within PostgreSQL's numeric range (skipped with ``numbers``
    false: the screen let through only moderate numbers). ``seen`` maps attrs already
    accepted to their text: a station's attrs repeat, and looking up the bytes is several
    times cheaper than decoding non-ASCII UTF-8.
    """
    key = bytes(raw)
    text = seen.get(key)
    if text is not None:
        return text
    try:
        text = str(key, "utf-8")
    except UnicodeDecodeError as exc:  # the payload was checked before: not reached
        return _Bad(BAD_JSON, f"attrs: not valid UTF-8 (byte {exc.start})")
    if text[:1] != "{":
        if text == "null":
            return None
        return _Bad(SCHEMA, f"attrs: expected an object, got {_RAW_JTYPE.get(text[:1], 'number')}")
    if len(key) > MAX_ATTRS_BYTES:
        return _Bad(SCHEMA, f"attrs: {len(key)} bytes, more than the {MAX_ATTRS_BYTES} allowed")
    # Cheap bounds first: fewer openers than the depth limit cannot nest too deep, and NUL can
    # only arrive as an escape; the exact checks read the text, every repeated key included.
    if text.count("{") + text.count("[") > MAX_ATTRS_DEPTH and _nesting(key) > MAX_ATTRS_DEPTH:
        return _Bad(SCHEMA, f"attrs: nested deeper than {MAX_ATTRS_DEPTH} levels")
    if "\\u0000" in text and any(m.group() == "\\u0000" for m in _NUL_ESCAPE.finditer(text)):
        return _Bad(SCHEMA, "attrs: contains \\u0000, which PostgreSQL jsonb cannot store")
    if numbers and (len(text) > _HUGE_FRACTION_CHARS or _MAYBE_HUGE_NUMBER.search(text)):
        for match in _NUMBER_OR_STRING.finditer(text):
            if match.group(1) is not None and _numeric_problem(*match.group(1, 2, 3)):
                return _Bad(SCHEMA, f"attrs: {_clip(match.group())} is outside the range of "
                                    "PostgreSQL's numeric")
    if len(key) <= _CACHED_ATTRS_MAX_BYTES:
        seen[key] = text
    return text


_CACHED_ATTRS_MAX_BYTES = 1024
_RAW_JTYPE = {"[": "array", '"': "string", "t": "boolean", "f": "boolean"}
_DIGIT = "[0-9]"  # not \d, which takes any Unicode digit
_DATE_TIME = rf"{_DIGIT}{{4}}-{_DIGIT}{{2}}-{_DIGIT}{{2}}[Tt ]{_DIGIT}{{2}}:{_DIGIT}{{2}}"
_NO_COLON_OFFSET = re.compile(rf"{_DATE_TIME}:{_DIGIT}{{2}}(?:\.{_DIGIT}+)?[+-]{_DIGIT}{{4}}")
_NAIVE = re.compile(rf"{_DATE_TIME}(?::{_DIGIT}{{2}}(?:\.{_DIGIT}+)?)?")
_EPOCH_TEXT = re.compile(rf"{_DIGIT}+")


def _ts_from_text(text: str) -> datetime | _Bad:
    """Parse an RFC 3339 timestamp on the slow path, explaining a refusal precisely."""
    if _NO_COLON_OFFSET.fullmatch(text):
        return _Bad(BAD_TIMESTAMP, f"ts: {_show(text)} has an offset without a colon (must be ±HH:MM)")
    try:
        return msgspec.convert(text, _AwareDatetime)
    except msgspec.ValidationError:
        pass
    if _EPOCH_TEXT.fullmatch(text):
        return _Bad(BAD_TIMESTAMP, "ts: epoch milliseconds must be a JSON number, not a string")
    if _NAIVE.fullmatch(text):
        return _Bad(BAD_TIMESTAMP, f"ts: {_show(text)} has no UTC offset (add Z or +07:00)")
    return _Bad(BAD_TIMESTAMP, f"ts: {_show(text)} is not an RFC 3339 timestamp")


def _coerce_ts(value: Any) -> Any:
    if isinstance(value, str):
        return _ts_from_text(value)
    if type(value) is _Number:
        text = value.text
        if "." in text or "e" in text or "E" in text:
            ms = float(text)
            if ms - ms == 0.0:
                return ms
        elif len(text) <= 30:
            return int(text)
        return _Bad(BAD_TIMESTAMP, f"ts: {_clip(text)} ms is outside years 1-9999")
    return _Bad(
        BAD_TIMESTAMP,
        f"ts: expected RFC 3339 text or epoch milliseconds, got {_jtype(value)}",
    )


def _coerce_number(value: Any, field: str) -> float | _Bad:
    if type(value) is _Number:
        number = float(value.text)  # correctly rounded, like msgspec's; no digit limit
        if number - number == 0.0:
            return number
        return _Bad(NOT_FINITE, f"{field}: {_clip(value.text)} overflows a double")
    return _Bad(SCHEMA, f"{field}: expected a number, got {_jtype(value)}")


def _coerce_str_map(value: Any, field: str) -> dict[str, str] | _Bad:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return value
    return _Bad(SCHEMA, f"{field}: expected an object of strings, got {_jtype(value)}")


def _coerce(obj: Any, attrs: msgspec.Raw) -> _Event | _Bad:
    """Rebuild a generically decoded element as an _Event, marking each unusable field.

    ``attrs`` is the element's attrs as sent (the last one if repeated), from msgspec.
    """
    if not isinstance(obj, dict):
        return _Bad(SCHEMA, f"expected an event object, got {_jtype(obj)}")
    ev = _Event()
    if "device_id" in obj:
        device = obj["device_id"]
        ev.device_id = (
            device
            if device is None or isinstance(device, str)
            else _Bad(SCHEMA, f"device_id: expected a string, got {_jtype(device)}")
        )
    if "kind" in obj:
        kind = obj["kind"]
        ev.kind = (
            kind if isinstance(kind, str) else _Bad(SCHEMA, f"kind: expected a string, got {_jtype(kind)}")
        )
    if "ts" in obj:
        ev.ts = _coerce_ts(obj["ts"])
    if "value" in obj:
        ev.value = _coerce_number(obj["value"], "value")
    for field in ("event_id", "unit"):
        text = obj.get(field)
        if text is not None and not isinstance(text, str):
            text = (
                _coerce_str_map(text, field)
                if field == "unit" and isinstance(text, dict)
                else _Bad(SCHEMA, f"{field}: expected a string, got {_jtype(text)}")
            )
        setattr(ev, field, text)
    if obj.get("units") is not None:
        ev.units = _coerce_str_map(obj["units"], "units")
    ev.attrs = attrs
    values = obj.get("values")
    if values is not None:
        ev.values = (
            {k: _coerce_number(v, f"values.{k}") for k, v in values.items()}
            if isinstance(values, dict)
            else _Bad(SCHEMA, f"values: expected an object, got {_jtype(values)}")
        )
    return ev


class _NotJson(ValueError):
    pass


def _refuse_constant(literal: str) -> Any:
    raise _NotJson(f"payload: {literal} is not valid JSON (JSON has no NaN or Infinity)")


_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=_Number,
                                parse_float=_Number)


class _AttrsOnly(msgspec.Struct, gc=False):
    attrs: msgspec.Raw = _NULL_RAW


_ATTRS_OF_EVENT = msgspec.json.Decoder(_AttrsOnly)
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])


def _strict_tree(payload: bytes) -> Any:
    """Decode any payload strictly for the slow path; a _Bad (bad_json) when it is not JSON.

    In order: UTF-8 (the whole payload, what msgspec skips included), nesting (at most
    MAX_JSON_DEPTH, so that no parser's recursion limit decides), the grammar (stdlib json,
    with NaN and Infinity refused; its messages are the details), lone surrogate escapes.
    Numbers stay literals (:class:`_Number`); a repeated key keeps its last value.
    """
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Bad(BAD_JSON, f"payload: not valid UTF-8 (byte {exc.start})")
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _nesting(payload) > MAX_JSON_DEPTH:
        return _Bad(BAD_JSON, f"payload: nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        tree = _STRICT_JSON.decode(text)
    except _NotJson as exc:
        return _Bad(BAD_JSON, str(exc))
    except json.JSONDecodeError as exc:
        at = len(text[:exc.pos].encode())
        return _Bad(BAD_JSON, f"payload: {exc.msg.removesuffix(' at')} at byte {at}")
    if "\\u" in text and (escape := _lone_surrogate(text)) is not None:
        return _Bad(BAD_JSON, f"payload: lone surrogate escape {escape}")
    return tree


_Row = tuple[str, str, str, int, float, str | None, str | None, int]


class _Run:
    """State of one decode() call: output rows, the caches and the current message index.

    Events are collected as one tuple per event and split into columns once at the end,
    which is cheaper than eight list appends per event.
    """

    __slots__ = (
        "clean",
        "dead",
        "expect",
        "expect_from",
        "index",
        "known",
        "max_age_s",
        "max_payload",
        "max_skew_s",
        "messages",
        "ok_attrs",
        "ok_devices",
        "ok_kinds",
        "ok_units",
        "rows",
        "too_far",
        "too_old",
    )

    def __init__(self, messages: Sequence[RawMessage], limits: DecodeLimits, now_us: int) -> None:
        self.messages = messages
        self.rows: list[_Row] = []  # (device_id, event_id, kind, ts, value, unit, attrs, index)
        self.dead: list[DeadLetter] = []
        self.known = limits.known_devices
        self.max_payload = limits.max_payload_bytes
        self.max_age_s = limits.max_event_age_s
        self.max_skew_s = limits.max_future_skew_s
        # Floats, so that an infinite limit simply never triggers.
        self.too_old = now_us - limits.max_event_age_s * 1e6
        self.too_far = now_us + limits.max_future_skew_s * 1e6
        # Values already validated: devices, kinds, units and a station's attrs repeat from
        # call to call (a Kafka poll is a few hundred messages). Shared by all calls, and
        # emptied when one grows past _CACHE_MAX so that unique values cannot bloat them.
        _bound_caches()
        self.ok_devices = _OK_DEVICES
        self.ok_kinds = _OK_KINDS
        self.ok_units = _OK_UNITS
        self.ok_attrs = _OK_ATTRS
        self.index = 0
        self.expect: str | None = None
        self.expect_from = ""
        self.clean = True

    def result(self) -> DecodeResult:
        rows = self.rows
        # One pass per column; zip(*rows) is several times slower on large batches.
        device, event_id, kind, ts, value, unit, attrs, index = (
            list(map(itemgetter(i), rows)) for i in range(8)
        )
        events = EventBatch(
            device_id=device,
            event_id=event_id,
            kind=kind,
            ts=np.array(ts, dtype=np.int64),
            value=np.array(value, dtype=np.float64) + 0.0,  # -0.0 becomes +0.0, as column-wise
            unit=unit,
            attrs=attrs,
        )
        return DecodeResult(
            events=events,
            dead=self.dead,
            message_index=np.array(index, dtype=np.int32),
            rejected=dict(Counter(d.reason for d in self.dead)),
        )

    def reject(self, reason: str, where: str, detail: str) -> None:
        message = self.messages[self.index]
        payload = message.payload
        self.dead.append(
            DeadLetter(
                source=message.source,
                reason=reason,
                raw=payload if type(payload) is bytes else bytes(payload),
                detail=f"{where}.{detail}" if where else detail,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
            )
        )

    def feed(self, index: int, payload: bytes, source: str, topic: str | None,
             key: bytes | None, clean: bool) -> None:
        """Decode message ``index`` of the call into rows and dead letters.

        ``clean``: the screen found it fit for the typed decode; if not, the slow path.
        """
        self.index = index
        n_rows, n_dead = len(self.rows), len(self.dead)
        try:
            if len(payload) > self.max_payload:
                self.reject(
                    TOO_LARGE,
                    "",
                    f"payload: {len(payload)} bytes, more than the {self.max_payload} allowed",
                )
                return
            # The device the transport vouches for: the MQTT topic level or the Kafka key.
            self.expect, self.expect_from = _vouched_device(source, topic, key)
            self.clean = clean
            if not clean:
                self._slow(payload)
                return
            try:
                top: Any = _MESSAGE_DECODER.decode(payload)
            except _DECODE_ERRORS:
                self.clean = False
                self._slow(payload)
                return
            if type(top) is list:
                if not top:
                    self.reject(SCHEMA, "", "payload: empty array")
                element = self.element
                for k, ev in enumerate(top):
                    element(ev, f"[{k}]")
            else:
                self.element(top, "")
        except Exception as exc:  # last resort: one message must never stop the stream
            del self.rows[n_rows:]
            del self.dead[n_dead:]
            self.reject(SCHEMA, "", f"payload: could not be decoded ({type(exc).__name__})")

    def _slow(self, payload: bytes) -> None:
        tree = _strict_tree(payload)
        if type(tree) is _Bad:
            self.reject(tree.reason, "", tree.detail)
        elif type(tree) is list:
            if not tree:
                self.reject(SCHEMA, "", "payload: empty array")
            # The attrs as sent, from msgspec: strict JSON by now, which it decodes.
            elements = _ELEMENTS.decode(payload)
            for k, obj in enumerate(tree):
                attrs = _ATTRS_OF_EVENT.decode(elements[k]).attrs if type(obj) is dict else _NULL_RAW
                self.element(_coerce(obj, attrs), f"[{k}]")
        elif type(tree) is dict:
            self.element(_coerce(tree, _ATTRS_OF_EVENT.decode(payload).attrs), "")
        else:
            self.reject(SCHEMA, "", f"payload: expected an object or array, got {_jtype(tree)}")

    def element(self, ev: _Event | _Bad, where: str) -> None:
        """Validate one event object and add its event(s), or reject it.

        The common case runs top to bottom on cached set lookups; each ``if`` falls into
        the precise (slower) explanation only when something is off.
        """
        if type(ev) is _Bad:
            self.reject(ev.reason, "", f"{where or 'payload'}: {ev.detail}")
            return
        device = ev.device_id
        if device is None:
            device = self.expect
            if device is None:
                self.reject(SCHEMA, where, "device_id: missing")
                return
        if device not in self.ok_devices:
            problem = _device_problem(device)
            if problem is not None:
                if ev.device_id is None:
                    problem.detail += f" (taken from the {self.expect_from})"
                self.reject(problem.reason, where, problem.detail)
                return
            self.ok_devices.add(device)
        if self.expect is not None and device != self.expect:
            self.reject(
                TOPIC_MISMATCH,
                where,
                f"device_id: {_show(device)} does not match the {self.expect_from} ({_show(self.expect)})",
            )
            return
        if self.known is not None and device not in self.known:
            self.reject(UNKNOWN_DEVICE, where, f"device_id: {_show(device)} is not registered")
            return

        ts = ev.ts
        if type(ts) is datetime:
            offset = _TZ_OFFSET_US.get(ts.tzinfo)
            if offset is None:
                offset = _offset_us(ts)
            ts_us = (
                ((ts.toordinal() - _EPOCH_ORDINAL) * 86400 + ts.hour * 3600 + ts.minute * 60 + ts.second)
                * 1_000_000
                + ts.microsecond
                - offset
            )
        else:
            ts_us = self._epoch_ts(ts, where)
            if ts_us is None:
                return
        if ts_us < self.too_old or ts_us > self.too_far:
            self._reject_age(ts_us, ts, where)
            return

        attrs: Any = ev.attrs
        if attrs is _NULL_RAW:
            attrs = None
        else:
            attrs = _attrs_text(attrs, self.ok_attrs, numbers=not self.clean)
            if type(attrs) is _Bad:
                self.reject(attrs.reason, where, attrs.detail)
                return
        if ev.values is not None:
            self._multi(ev, device, ts_us, attrs, where)
            return

        kind = ev.kind
        camera = self.ok_kinds.get(kind)  # type: ignore[arg-type]
        if camera is None:
            problem = _kind_problem(kind)
            if problem is not None:
                self.reject(problem.reason, where, problem.detail)
                return
            camera = self.ok_kinds[kind] = kind.startswith(_CAMERA_PREFIX)  # type: ignore[union-attr]
        value = ev.value
        if type(value) is not float or value - value != 0.0:
            problem = _value_problem(value, "value")
            self.reject(problem.reason, where, problem.detail)
            return
        if camera and not 0.0 <= value <= 1.0:
            self.reject(SCHEMA, where, f"value: camera confidence {value:g} is outside 0..1")
            return
        event_id = ev.event_id
        if event_id is None:
            event_id = derive_event_id(device, kind, ts_us)  # type: ignore[arg-type]
        elif not (
            isinstance(event_id, str) and 0 < len(event_id) <= MAX_ID_CHARS and event_id.isprintable()
        ):  # the common case inline; _text_problem says what is wrong
            problem = _text_problem(event_id, "event_id", 1, MAX_ID_CHARS)
            self.reject(problem.reason, where, problem.detail)  # type: ignore[union-attr]
            return
        unit = ev.unit
        if type(unit) is dict:
            self.reject(SCHEMA, where, "unit: expected a string, got object")
            return
        if unit not in self.ok_units:
            if (problem := _text_problem(unit, "unit", 0, MAX_UNIT_CHARS)) is not None:
                self.reject(problem.reason, where, problem.detail)
                return
            self.ok_units.add(unit)
        if ev.units is not None:
            self.reject(SCHEMA, where, "units: only allowed with values")
            return
        self.rows.append((device, event_id, kind, ts_us, value, unit, attrs, self.index))  # type: ignore[arg-type]

    def _epoch_ts(self, ts: Any, where: str) -> int | None:
        if type(ts) is int:
            ts_us = ts * 1000
        elif type(ts) is float:
            scaled = ts * 1000
            if scaled - scaled != 0.0:  # overflowed: ts is finite (NaN is not JSON)
                self.reject(BAD_TIMESTAMP, where, f"ts: {_show(ts)} ms is outside years 1-9999")
                return None
            ts_us = round(scaled)
        elif type(ts) is _Bad:
            self.reject(ts.reason, where, ts.detail)
            return None
        else:
            self.reject(SCHEMA, where, "ts: missing")
            return None
        if not _MIN_US <= ts_us <= _MAX_US:
            self.reject(BAD_TIMESTAMP, where, f"ts: {_show(ts)} ms is outside years 1-9999")
            return None
        return ts_us

    def _reject_age(self, ts_us: int, ts: Any, where: str) -> None:
        if ts_us < self.too_old:
            hint = ""
            if type(ts) is not datetime and abs(ts) < 1e11:
                hint = " (epoch seconds? ts must be in milliseconds)"
            self.reject(TOO_OLD, where, f"ts: {_iso(ts_us)} is older than {_span(self.max_age_s)}{hint}")
        else:
            self.reject(
                TOO_FAR_FUTURE,
                where,
                f"ts: {_iso(ts_us)} is more than {_span(self.max_skew_s)} ahead",
            )

    def _multi(self, ev: _Event, device: str, ts_us: int, attrs: str | None, where: str) -> None:
        """The multi-reading form: one event per entry of ``values``, each judged on its own."""
        values = ev.values
        if type(values) is _Bad:
            self.reject(values.reason, where, values.detail)
            return
        if ev.kind is not msgspec.UNSET or ev.value is not msgspec.UNSET:
            self.reject(SCHEMA, where, "values: cannot be combined with kind or value")
            return
        if ev.event_id is not None:
            self.reject(SCHEMA, where, "event_id: not allowed with values (ids derive per kind)")
            return
        if not values:
            self.reject(SCHEMA, where, "values: empty")
            return
        units = self._units(ev, values, where)
        if units is None:
            return
        default_unit, unit_of = units
        for kind, value in values.items():
            field = f"values.{kind}"
            camera = self.ok_kinds.get(kind)
            if camera is None:
                problem = _kind_problem(kind, "values")
                if problem is not None:
                    self.reject(problem.reason, where, problem.detail)
                    continue
                camera = self.ok_kinds[kind] = kind.startswith(_CAMERA_PREFIX)
            if type(value) is not float or value - value != 0.0:
                problem = _value_problem(value, field)
                self.reject(problem.reason, where, problem.detail)
                continue
            if camera and not 0.0 <= value <= 1.0:
                self.reject(SCHEMA, where, f"{field}: camera confidence {value:g} is outside 0..1")
                continue
            self.rows.append(
                (
                    device,
                    derive_event_id(device, kind, ts_us),
                    kind,
                    ts_us,
                    value,
                    unit_of.get(kind, default_unit),
                    attrs,
                    self.index,
                )
            )

    def _units(
        self, ev: _Event, values: dict[str, Any], where: str
    ) -> tuple[str | None, dict[str, str]] | None:
        """(unit for every reading, unit per kind) of a multi-reading object, or None if rejected.

        ``unit`` may be one string for all readings or an object like ``units``; giving both
        as objects is ambiguous.
        """
        unit: Any = ev.unit
        units: Any = ev.units
        if isinstance(unit, dict):
            if units is not None:
                self.reject(SCHEMA, where, "units: give per-kind units in unit or units, not both")
                return None
            unit, units = None, unit
        problem = _units_problem(unit, units, values)
        if problem is not None:
            self.reject(problem.reason, where, problem.detail)
            return None
        return unit, units or {}


def _units_problem(unit: Any, units: Any, values: dict[str, Any]) -> _Bad | None:
    if unit is not None and (problem := _text_problem(unit, "unit", 0, MAX_UNIT_CHARS)):
        return problem
    if units is None:
        return None
    if type(units) is _Bad:
        return units
    for kind, text in units.items():
        if kind not in values:
            return _Bad(SCHEMA, f"units: {_show(kind)} has no reading in values")
        if problem := _text_problem(text, f"units.{kind}", 0, MAX_UNIT_CHARS):
            return problem
    return None


_TZ_OFFSET_US: dict[Any, int] = {}

_OK_DEVICES: set[str] = set()
_OK_KINDS: dict[str, bool] = {}  # kind -> is a camera detection
_OK_UNITS: set[str | None] = {None}
_CANONICAL: dict[str | None, str | None] = {}  # the shared object of each device, kind, unit
_OK_ATTRS: dict[bytes, str | None] = {}  # attrs of at most _CACHED_ATTRS_MAX_BYTES -> text
_CACHE_MAX = 16384


def _bound_caches() -> None:
    for cache in (_OK_DEVICES, _OK_KINDS, _OK_UNITS, _OK_ATTRS, _CANONICAL):
        if len(cache) > _CACHE_MAX:
            cache.clear()
    _OK_UNITS.add(None)  # no unit is always fine
    _OK_ATTRS[b"null"] = None  # attrs absent or null


def _offset_us(ts: datetime) -> int:
    """UTC offset of an aware datetime in µs, cached per tzinfo (msgspec reuses tz objects)."""
    offset = ts.utcoffset()
    us = 0 if offset is None else offset // timedelta(microseconds=1)
    if len(_TZ_OFFSET_US) < 4096:
        _TZ_OFFSET_US[ts.tzinfo] = us
    return us


def _payloads_and_expected(messages: Sequence[RawMessage]) -> tuple[list[bytes], list[str | None]]:
    """Payloads and, per message, the device the transport vouches for."""
    if isinstance(messages, PartitionMessages):
        keys = messages.keys
        if all(keys):
            return messages.payloads, list(map(bytes.decode, keys, repeat("utf-8"), repeat("replace")))
        return messages.payloads, [k.decode("utf-8", "replace") if k else None for k in keys]
    return ([m.payload for m in messages],
            [_vouched_device(m.source, m.topic, m.key)[0] for m in messages])


def _vouched_device(source: str, topic: str | None, key: bytes | None) -> tuple[str | None, str]:
    """The device the transport vouches for (MQTT topic level, Kafka key) and where from."""
    if source == "mqtt" and topic is not None and topic.startswith(MQTT_TOPIC_PREFIX):
        return topic[_PREFIX_LEN:], "topic"
    if source == "kafka" and key:
        return key.decode("utf-8", "replace"), "key"
    return None, ""


def _uniform(run: _Run, payloads: list[bytes], expected: list[str | None]) -> EventBatch | None:
    """The whole call decoded column-wise, or None if any message needs :func:`_decode_each`.

    The messages are scanned by compiled code (:mod:`ioc.fast.scan`); what is checked per
    distinct value (device ids, kinds, units) is checked here once per value. Accepts exactly
    what the message-by-message path accepts (one event per message, no dead letters) and
    builds the same columns; every doubt returns None rather than a reason.
    """
    n = len(payloads)
    lengths = np.fromiter(map(len, payloads), np.int64, n)
    if int(lengths.max()) > run.max_payload:
        return None
    ends = np.cumsum(lengths)
    buf = np.frombuffer(b"".join(payloads), np.uint8)
    vouched = expected
    if None in expected:
        vouched = [e or "" for e in expected]
    joined = "".join(vouched).encode()
    exp_len = np.fromiter(map(len, vouched), np.int64, n)
    if len(joined) != int(exp_len.sum()):  # not ASCII: no valid device id then
        return None
    exp_start = np.cumsum(exp_len) - exp_len
    if vouched is not expected:
        exp_len[[i for i, e in enumerate(expected) if e is None]] = -1
    spans = np.empty((n, 10), np.int64)
    ts = np.empty(n, np.int64)
    value = np.empty(n, np.float64)
    codes = np.empty((n, 2), np.int64)
    reps = np.empty((5, scan.MAX_DISTINCT), np.int64)
    distinct = np.zeros(5, np.int64)
    if scan.scan(buf, ends - lengths, ends, np.frombuffer(joined, np.uint8), exp_start, exp_len,
                 MAX_ID_CHARS, MAX_ATTRS_BYTES, MAX_ATTRS_DEPTH, spans, ts, value, codes, reps,
                 distinct, np.empty(MAX_ATTRS_DEPTH + 1, np.uint8)) >= 0:
        return None
    if vouched is expected:
        device = expected
    else:
        device = [e if e is not None else _text_at(buf, spans, i, scan.DEVICE)
                  for i, e in enumerate(expected)]
    if vouched is expected:
        device_codes, first = buffer_codes(np.frombuffer(joined, np.uint8), exp_start, exp_len)
        seen = list(map(device.__getitem__, first.tolist()))
    else:
        device_codes, seen = _dict_codes(device)
    devices = set(seen)
    for new in devices - run.ok_devices:
        if _device_problem(new) is not None:
            return None
        run.ok_devices.add(new)
    if run.known is not None and not devices <= run.known:
        return None
    if ts.min() < run.too_old or ts.max() > run.too_far:
        return None
    canonical = _CANONICAL.setdefault
    ok_kinds = run.ok_kinds
    kinds = [canonical(k, k) for k in _texts(buf, spans, reps[scan.KIND, :distinct[scan.KIND]],
                                             scan.KIND)]
    for new in set(kinds) - ok_kinds.keys():
        if _kind_problem(new) is not None:
            return None
        ok_kinds[new] = new.startswith(_CAMERA_PREFIX)
    if any(ok_kinds[k] for k in kinds):
        camera = np.array([ok_kinds[k] for k in kinds])[codes[:, 0]]
        if ((value[camera] < 0.0) | (value[camera] > 1.0)).any():
            return None
    units: list[str | None] = [canonical(u, u) for u in _texts(
        buf, spans, reps[scan.UNIT, :distinct[scan.UNIT]], scan.UNIT)]
    for new in set(units) - run.ok_units:
        if _text_problem(new, "unit", 0, MAX_UNIT_CHARS) is not None:
            return None
        run.ok_units.add(new)
    units.append(None)  # code -1: no unit
    kind = CodedList(kinds, codes[:, 0])
    # Event ids and attrs stay where they lie in the messages: the COPY encoder copies them
    # from there, and no str is made for them.
    event_id: Sequence[str] = _column(buf, spans, scan.EVENT_ID)
    missing = spans[:, 2 * scan.EVENT_ID + 1] < 0
    if missing.any():
        event_id = list(event_id)  # type: ignore[arg-type]
        for i in np.flatnonzero(missing).tolist():
            event_id[i] = derive_event_id(device[i], kind[i], int(ts[i]))
    # One shared object per distinct device, kind and unit, with each event's code for it:
    # the passes that follow (rules, latest values, the COPY encoder) work per distinct value.
    return EventBatch(device_id=CodedList([canonical(d, d) for d in seen], device_codes),
                      event_id=event_id, kind=kind, ts=ts, value=value,
                      unit=CodedList(units, codes[:, 1] % len(units)),
                      attrs=_column(buf, spans, scan.ATTRS))


def _dict_codes(texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Each text's code by first appearance, and the distinct texts in that order: a dict
    pass, the reference of :func:`ioc.fast.codes.buffer_codes` (which codes texts lying in
    one buffer by their bytes)."""
    seen = list(dict.fromkeys(texts))
    position = {t: i for i, t in enumerate(seen)}
    return np.fromiter(map(position.__getitem__, texts), np.int64, len(texts)), seen


def _text_at(buf: np.ndarray, spans: np.ndarray, i: int, col: int) -> str:
    a, size = int(spans[i, 2 * col]), int(spans[i, 2 * col + 1])
    return str(buf[a:a + size], "utf-8")


def _texts(buf: np.ndarray, spans: np.ndarray, rows: np.ndarray, col: int) -> list[str]:
    return [_text_at(buf, spans, i, col) for i in rows.tolist()]


def _column(buf: np.ndarray, spans: np.ndarray, col: int) -> TextColumn:
    return TextColumn(buf, spans[:, 2 * col].copy(), spans[:, 2 * col + 1].copy())
