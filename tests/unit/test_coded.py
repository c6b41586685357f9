"""Coded text columns (ioc/model/columns.py) and every pass that reads them by code: each must
give exactly what it gives for the same plain list. (The hash table that codes device ids is
pitted against its dict reference in tests/unit/fast/test_codes.py.)"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.ingest.latest import _codes
from ioc.model import CodedList, EventBatch
from ioc.rules.kinds import KindCodes
from ioc.rules.model import DeviceMeta
from ioc.rules.registry import DeviceRegistry
from ioc.storage.copy_binary import encode_events

# Few distinct values, sharing prefixes and lengths.
texts = st.lists(st.sampled_from(["", "a", "b", "ab", "ba", "hg-vt-wl-001", "hg-vt-wl-002",
                                  "Vị Thanh", "x" * 40]), max_size=60)


def coded(items: list[str]) -> CodedList:
    values = list(dict.fromkeys(items))
    return CodedList(values, np.array([values.index(i) for i in items], np.int64))


@settings(max_examples=100, deadline=None)
@given(st.lists(texts, min_size=1, max_size=4))
def test_concat_is_the_plain_concatenation(parts: list[list[str]]) -> None:
    joined = CodedList.concat([coded(p) for p in parts])
    plain = [t for p in parts for t in p]
    assert joined == plain
    assert [joined.values[c] for c in joined.codes.tolist()] == plain


def batch(device: list[str], kind: list[str], unit: list[str | None]) -> EventBatch:
    n = len(device)
    return EventBatch(device_id=device, event_id=[str(i) for i in range(n)], kind=kind,
                      ts=np.arange(n, dtype=np.int64)[::-1].copy(), value=np.ones(n),
                      unit=unit, attrs=[None] * n)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_every_reader_gives_what_it_gives_for_a_plain_list(data: st.DataObject) -> None:
    device = data.draw(texts)
    n = len(device)
    kind = data.draw(st.lists(st.sampled_from(["rain", "water_level", "pm25"]), min_size=n,
                              max_size=n))
    unit = data.draw(st.lists(st.sampled_from([None, "m", "mm", "µg/m³"]), min_size=n,
                              max_size=n))
    split = data.draw(st.integers(0, n))
    c_device, c_kind, c_unit = (CodedList.concat([coded(c[:split]), coded(c[split:])])
                                for c in (device, kind, unit))

    plain = batch(device, kind, unit)
    assert bytes(encode_events(batch(c_device, c_kind, c_unit))) == bytes(encode_events(plain))
    names_c, names_p = KindCodes(), KindCodes()
    assert [names_c.names[c] for c in names_c.codes(c_kind)] == \
        [names_p.names[c] for c in names_p.codes(kind)] == list(kind)
    assert _codes(c_device, {"a": 0}).tolist() == _codes(device, {"a": 0}).tolist()
    registries = DeviceRegistry(), DeviceRegistry()
    for r in registries:
        r.add([DeviceMeta("ab"), DeviceMeta("hg-vt-wl-002")])
    slots, new = registries[0].intern(c_device)
    want_slots, want_new = registries[1].intern(device)
    assert (slots.tolist(), new) == (want_slots.tolist(), want_new)
