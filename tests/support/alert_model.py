"""Alerts of (rule, device) keys as the lifecycle's rules say, applied one transition at a time:
the model the recorder's set-based writes are checked against."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ioc.rules import Transition

Key = tuple[str, str]


@dataclass
class Alert:
    start: int
    count: int
    last: int
    end: int | None = None


Book = dict[Key, list[Alert]]


def open_alert(book: Book, key: Key) -> Alert | None:
    alerts = book.get(key, [])
    return alerts[-1] if alerts and alerts[-1].end is None else None


def one_at_a_time(book: Book, transitions: Iterable[Transition]) -> list[tuple[Key, str]]:
    """Apply ``transitions`` in order; returns the changes made ((key, change) in order): a fire
    opens an alert or repeats the open one, a clear resolves the open one or does nothing."""
    changes = []
    for t in transitions:
        key = (t.rule_id, t.device_id)
        alert = open_alert(book, key)
        if t.action == "fire" and alert is not None:
            alert.count += 1
            alert.last = t.ts_us
            changes.append((key, "repeated"))
        elif t.action == "fire":
            book.setdefault(key, []).append(Alert(t.ts_us, 1, t.ts_us))
            changes.append((key, "fired"))
        elif alert is not None:
            alert.end = t.ts_us
            changes.append((key, "resolved"))
    return changes
