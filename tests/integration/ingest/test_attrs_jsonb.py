"""What the decoder accepts as attrs, PostgreSQL's jsonb accepts; what it refuses, jsonb refuses.

attrs are stored as their JSON text (the COPY sends the text, the server parses it into
jsonb), so the decoder must refuse at decode time whatever the server would refuse -- a
refusal there would fail the whole COPY. Hostile attrs (numbers at the edges of numeric's
range, ``\\u0000``, lone and paired surrogate escapes, repeated keys, deep nesting) go through
decode() and, either way, through ``SELECT $1::text::jsonb`` on the real server:

- accepted by the decoder: the server must accept the text;
- refused for a number out of numeric's range or a ``\\u0000``, or as bad_json for a lone
  surrogate: the server must refuse it too (nothing refused that jsonb could store);
- refused for what is our own policy, stricter than jsonb on purpose: deeper than
  MAX_ATTRS_DEPTH or larger than MAX_ATTRS_BYTES (one event's attrs must not bloat a batch),
  or not an object (the contract's shape).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import event as note
from hypothesis import strategies as st

from ioc.embedded.postgres import EmbeddedPostgres
from ioc.ingest.decode import MAX_ATTRS_DEPTH, DecodeLimits, RawMessage, decode

NOW_US = 1_795_395_600_000_000  # 2026-11-23T08:00:00+07:00
# Refusals that are our policy, not jsonb's: the server would store these.
STRICTER = ("attrs: nested deeper than", "attrs: expected an object", "bytes, more than the")


class Frag(str):
    """JSON text put in as it is."""


def dump(node: Any) -> str:
    if isinstance(node, Frag):
        return str(node)
    if isinstance(node, tuple):  # an object as pairs, so that a key can repeat
        return "{" + ", ".join(f"{dump(k)}: {dump(v)}" for k, v in node) + "}"
    if isinstance(node, list):
        return "[" + ",".join(dump(v) for v in node) + "]"
    return json.dumps(node, ensure_ascii=False)


EDGE = st.sampled_from([
    "1e131071", "1e131072", "9.9e131071", "0.1e131072", "99e131070", "1e-16383", "1e-16384",
    "0e-16383", "0e-16384", "0.0e-16383", "1.5e-16382", "1.55e-16382", "0e200000",
    "0e1073741822", "0e1073741823", "1e-1073741822", "-0", "-0.0", "1e400", "-1e400", "1E+2",
    "1e00000000000000000000131071", "0." + "0" * 16382 + "1", "0." + "0" * 16383 + "1",
    "1." + "0" * 16383, "10." + "0" * 16383 + "e1", "123456789" * 50,
])
NUMBERS = st.one_of(
    EDGE,
    st.tuples(st.sampled_from(["1", "9.99", "0.001", "12.5", "-3", "0", "0.0"]),
              st.integers(-16390, -16375) | st.integers(131065, 131075)).map(lambda t: f"{t[0]}e{t[1]}"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(str),
).map(Frag)
ESCAPES = st.sampled_from([
    '"\\u0000"', '"a\\u0000"', '"\\\\u0000"', '"\\\\\\u0000"', '"\\ud800"', '"\\udc00"',
    '"\\uDBFF\\uDFFF"', '"\\ud83d\\ude00"', '"x\\ud800\\u0041"', '"\\u001f"', '"\\uFFFF"',
]).map(Frag)
SCALARS = st.one_of(st.none(), st.booleans(), st.text(max_size=6), NUMBERS, NUMBERS, NUMBERS, ESCAPES)
KEYS = st.one_of(st.text(max_size=4), st.just("a"), st.just("b"), ESCAPES)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.lists(st.tuples(KEYS, inner), max_size=3).map(tuple), max_leaves=6)


@st.composite
def hostile_attrs(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(KEYS, VALUES), max_size=4))
    if pairs and draw(st.booleans()):
        pairs.append((draw(st.sampled_from(pairs))[0], draw(VALUES)))  # a repeated key
    if draw(st.integers(0, 5)) == 0:
        depth = draw(st.integers(MAX_ATTRS_DEPTH - 2, MAX_ATTRS_DEPTH + 2))
        pairs.append(("deep", Frag("[" * depth + dump(draw(SCALARS)) + "]" * depth)))
    return dump(tuple(pairs))


@pytest.fixture(scope="module")
def jsonb(pg_server: EmbeddedPostgres) -> Iterator[Any]:
    """jsonb(text): None if the server stores the text as jsonb, else its SQLSTATE."""
    loop = asyncio.new_event_loop()
    conn = loop.run_until_complete(asyncpg.connect(pg_server.dsn()))

    def check(text: str) -> str | None:
        try:
            loop.run_until_complete(conn.fetchval("SELECT $1::text::jsonb", text))
        except asyncpg.PostgresError as exc:
            return exc.sqlstate
        return None

    yield check
    loop.run_until_complete(conn.close())
    loop.close()


def decoded(attrs: str) -> tuple[str | None, str | None]:
    """(stored attrs text, None) or (None, "reason: detail") from decode()."""
    payload = ('{"device_id": "hg-vt-wl-001", "kind": "water_level", "ts": 1795392000000, '
               f'"value": 1.5, "attrs": {attrs}}}').encode()
    result = decode([RawMessage(payload, "http")], DecodeLimits(), NOW_US)
    if result.dead:
        return None, f"{result.dead[0].reason}: {result.dead[0].detail}"
    return result.events.attrs[0], None


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_attrs())
@example('{"a": 1e200000}')
@example('{"a": "\\u0000", "a": 1}')
@example('{"a": 1e-16383, "b": 1e131071, "c": 0e200000}')
def test_decoded_attrs_are_exactly_what_jsonb_stores(jsonb: Any, attrs: str) -> None:
    stored, refusal = decoded(attrs)
    server = jsonb(attrs)
    note(f"decoder: {re.sub('[0-9.e-]{6,}', '_', refusal or 'stores')[:48]}; server: {server or 'stores'}")
    if refusal is None:
        assert stored == attrs
        assert server is None, f"decoder accepted, server refused ({server}): {attrs[:200]}"
    elif refusal.startswith("schema: attrs:") and any(s in refusal for s in STRICTER):
        pass  # our policy, stricter than jsonb on purpose (see the module docstring)
    else:
        # numeric range, \u0000 (22003, 22P05) or a lone surrogate (bad_json; 22P02)
        assert refusal.startswith(("schema: attrs:", "bad_json: payload: lone surrogate")), refusal
        assert server is not None, f"decoder refused ({refusal}), server stores it: {attrs[:200]}"
