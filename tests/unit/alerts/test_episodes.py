"""A batch's transitions read as episodes leave the alerts as applying them one at a time does."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ioc.alerts.episodes import plan
from ioc.rules import Transition
from tests.support.alert_model import Alert, Book, one_at_a_time, open_alert

KEYS = [("r1", "d1"), ("r1", "d2"), ("r2", "d1")]


def by_episodes(book: Book, transitions: list[Transition]) -> None:
    """What the recorder's two statements do with the plan."""
    for k in plan(transitions):
        key = (k.rule_id, k.device_id)
        alert = open_alert(book, key)
        rest = k.episodes
        if k.lead_clear is not None and alert is not None:
            alert.end = transitions[k.lead_clear].ts_us
        elif k.continues_open() and alert is not None:
            first, rest = k.episodes[0], k.episodes[1:]
            alert.count += len(first.fires)
            alert.last = transitions[first.fires[-1]].ts_us
            if first.end is not None:
                alert.end = transitions[first.end].ts_us
        for ep in rest:
            book.setdefault(key, []).append(Alert(
                transitions[ep.fires[0]].ts_us, len(ep.fires), transitions[ep.fires[-1]].ts_us,
                None if ep.end is None else transitions[ep.end].ts_us))


def transition(key: tuple[str, str], action: str, ts: int) -> Transition:
    return Transition(key[0], key[1], action, ts, 1.0, "critical", "m", "water_level", None)


@st.composite
def batches(draw: st.DrawFn) -> tuple[set[tuple[str, str]], list[Transition]]:
    open_before = draw(st.sets(st.sampled_from(KEYS)))
    steps = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.sampled_from(["fire", "clear"])),
                          max_size=30))
    return open_before, [transition(key, action, i) for i, (key, action) in enumerate(steps)]


@given(batches())
def test_episodes_change_alerts_as_transitions_one_at_a_time(
    batch: tuple[set[tuple[str, str]], list[Transition]]
) -> None:
    open_before, transitions = batch
    books: list[Book] = [{key: [Alert(-1, 1, -1)] for key in open_before} for _ in range(2)]
    one_at_a_time(books[0], transitions)
    by_episodes(books[1], transitions)
    assert books[0] == books[1]


def test_a_key_that_fires_clears_and_fires_again_has_two_episodes() -> None:
    key, other = KEYS[0], KEYS[1]
    [o, k] = plan([transition(other, "clear", 0), transition(key, "fire", 1),
                   transition(key, "fire", 2), transition(other, "clear", 3),
                   transition(key, "clear", 4), transition(key, "clear", 5),
                   transition(key, "fire", 6)])
    assert (k.lead_clear, [(e.fires, e.end) for e in k.episodes]) == (None, [([1, 2], 4), ([6], None)])
    assert k.continues_open()
    assert (o.lead_clear, o.episodes, o.continues_open()) == (0, [], False)


def test_an_unknown_action_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transition action"):
        plan([transition(KEYS[0], "explode", 0)])
