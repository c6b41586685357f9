"""The compiled hash table (ioc/fast/codes.py) against its reference, the decoder's dict pass:
the same code for every text and the same first appearance of each."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ioc.fast.codes import buffer_codes
from ioc.ingest.decode import _dict_codes

# Few distinct values, sharing prefixes and lengths (the hash table's hard cases), or any text.
FEW = st.sampled_from(["", "a", "b", "ab", "ba", "hg-vt-wl-001", "hg-vt-wl-002", "Vị Thanh",
                       "x" * 40])
TEXTS = st.lists(FEW, max_size=60) | st.lists(st.text(max_size=6), max_size=200)


@settings(max_examples=300, deadline=None)
@given(TEXTS, st.data())
def test_buffer_codes_code_like_a_dict_pass(items: list[str], data: st.DataObject) -> None:
    buf, start, size = bytearray(), [], []
    for text in items:
        buf += data.draw(st.binary(max_size=2))  # the texts need not lie end to end
        start.append(len(buf))
        size.append(len(text.encode()))
        buf += text.encode()
    codes, first = buffer_codes(np.frombuffer(bytes(buf) + b"-", np.uint8),
                                np.array(start, np.int64), np.array(size, np.int64))
    want_codes, distinct = _dict_codes(items)
    assert codes.tolist() == want_codes.tolist()
    assert [items[i] for i in first.tolist()] == distinct
