"""Helpers shared by the rules tests: comparable transitions, batch cutting, and models of what
the service does with the engine's output — the alert book and the stored rows of a restart."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ioc.rules import Evaluation, RuleBatch, RuleEngine, Transition
from ioc.rules.corrections import AlertRecord, Correction, Episode
from ioc.rules.model import DeviceMeta, Rule

S = 1_000_000  # one second in microseconds

Event = tuple[str, str, int, float]  # (device_id, kind, ts_us, value)


def key(t: Transition, offset: int = 0) -> tuple:
    """Everything observable about a transition, NaN made comparable, index made global."""
    value = "nan" if math.isnan(t.value) else t.value
    index = None if t.event_index is None else t.event_index + offset
    return (t.rule_id, t.device_id, t.action, t.ts_us, value, t.severity, t.message, t.kind, index)


def episode_key(e: Episode | None) -> tuple | None:
    """An episode made comparable (its transitions by :func:`key`)."""
    if e is None:
        return None
    return (e.start_us, e.end_us, e.fires, e.fire and key(e.fire), e.last and key(e.last))


def correction_key(c: Correction) -> tuple:
    """Everything observable about a correction, NaN made comparable."""
    return (c.rule_id, c.device_id, c.since_us, episode_key(c.old), episode_key(c.new))


def by_device(keys: Iterable[tuple]) -> list[tuple]:
    """Transition (or correction) keys grouped by device, each device's in their order.

    The engine orders a batch's transitions by device slot, which depends on the order
    devices were registered, and the reference by first appearance; only the order within a
    device means anything.
    """
    return sorted(keys, key=lambda k: k[1])


def batch(events: Sequence[Event]) -> RuleBatch:
    """A batch from ``(device_id, kind, ts_us, value)`` tuples."""
    return RuleBatch(
        [e[0] for e in events], [e[1] for e in events],
        np.array([e[2] for e in events], dtype=np.int64),
        np.array([e[3] for e in events], dtype=np.float64),
    )


def bounds(n: int, cuts: Iterable[int] = ()) -> list[tuple[int, int]]:
    """``[lo, hi)`` pieces of ``range(n)`` cut at ``cuts`` (out-of-range cuts are ignored)."""
    points = [0, *sorted(c for c in set(cuts) if 0 < c < n), n]
    return list(itertools.pairwise(points))


def run_cut(engine: RuleEngine, b: RuleBatch, cuts: Sequence[int] = ()) -> list[tuple]:
    """Evaluate ``b`` cut at ``cuts`` (committing each piece); transitions with global indices."""
    out: list[tuple] = []
    for lo, hi in bounds(len(b), cuts):
        ev = engine.evaluate(b.take(np.arange(lo, hi)))
        out += [key(t, lo) for t in ev.transitions]
        engine.commit(ev)
    return out


# -- the alert book -------------------------------------------------------------------------


@dataclass(slots=True)
class BookAlert:
    rule_id: str
    device_id: str
    start: int
    end: int | None
    fires: int
    withdrawn: bool = False


@dataclass(slots=True)
class AlertBook:
    """The alerts table as the service keeps it, reduced to what event time decides.

    Transitions first, in order: a ``fire`` opens an alert of its (rule, device) unless one is
    open, else counts one more fire; a ``clear`` resolves the open one at its ts. Then the
    corrections: ``raise`` inserts the ``new`` episode; ``withdraw`` takes the ``old`` alert
    out; ``amend`` moves the ``old`` alert's start (when given), end and number of fires to the
    ``new`` episode's. A correction finds its alert like ``ioc/storage/alerts.py`` does: the
    pair's alert that started at ``old.start_us``, or when that is None the newest that
    started before ``since_us`` (on ties, the one inserted last); withdrawn alerts never.
    """

    alerts: list[BookAlert] = field(default_factory=list)

    def apply(self, transitions: Iterable[Transition], corrections: Iterable[Correction] = ()) -> None:
        for t in transitions:
            cur = self._open(t.rule_id, t.device_id)
            if t.action == "fire":
                if cur is None:
                    self.alerts.append(BookAlert(t.rule_id, t.device_id, t.ts_us, None, 1))
                else:
                    cur.fires += 1
            elif cur is not None:
                cur.end = t.ts_us
        for c in corrections:
            self._correct(c)
        self._check()

    def _open(self, rule_id: str, device_id: str) -> BookAlert | None:
        found = [a for a in self._live(rule_id, device_id) if a.end is None]
        return found[-1] if found else None

    def _live(self, rule_id: str, device_id: str) -> list[BookAlert]:
        return [a for a in self.alerts
                if a.rule_id == rule_id and a.device_id == device_id and not a.withdrawn]

    def _correct(self, c: Correction) -> None:
        if c.old is None:
            assert c.new is not None and c.new.start_us is not None, c
            self.alerts.append(BookAlert(c.rule_id, c.device_id, c.new.start_us, c.new.end_us,
                                         c.new.fires))
            return
        live = self._live(c.rule_id, c.device_id)
        if c.old.start_us is None:
            found = [a for a in live if a.start < c.since_us]
            newest = max((a.start for a in found), default=None)
            found = [a for a in found if a.start == newest]
        else:
            found = [a for a in live if a.start == c.old.start_us]
        assert found, f"{c} finds no alert in {self.alerts}"
        alert = found[-1]
        if c.new is None:
            alert.withdrawn = True
            return
        if c.new.start_us is not None:
            alert.start = c.new.start_us
        alert.end = c.new.end_us
        alert.fires += c.new.fires - c.old.fires
        assert alert.fires >= 1, (c, alert)

    def _check(self) -> None:
        """At most one open alert per (rule, device), as the alerts table's unique index wants."""
        open_ = [(a.rule_id, a.device_id) for a in self.alerts if a.end is None and not a.withdrawn]
        assert len(open_) == len(set(open_)), f"two open alerts of one pair: {self.alerts}"

    def records(self) -> list[AlertRecord]:
        """The alerts that count, sorted like :func:`~ioc.rules.corrections.alert_records`."""
        return sorted(
            (AlertRecord(a.rule_id, a.device_id, a.start, a.end, a.fires)
             for a in self.alerts if not a.withdrawn),
            key=lambda r: (r.rule_id, r.device_id, r.started_us),
        )


def run_book(engine: RuleEngine, arrivals: Sequence[Event], cuts: Iterable[int] = (),
             now_us: int | None = None, book: AlertBook | None = None) -> AlertBook:
    """Feed ``arrivals`` cut at ``cuts`` through ``engine`` into an alert book; with
    ``now_us``, the absence timer runs once at that instant after the last batch."""
    book = AlertBook() if book is None else book
    for lo, hi in bounds(len(arrivals), cuts):
        ev = engine.evaluate(batch(arrivals[lo:hi]))
        book.apply(ev.transitions, ev.corrections)
        engine.commit(ev)
    if now_us is not None:
        ev = engine.check_absent(now_us)
        book.apply(ev.transitions, ev.corrections)
        engine.commit(ev)
    return book


# -- the database of a restart ----------------------------------------------------------------


@dataclass(slots=True)
class StoredRules:
    """The engine's tables as the service writes them with every batch, and reads at start.

    ``rule_state`` is upserted from ``state_rows()``. Of ``checkpoint_changes()``, the
    ``dropped`` entries are deleted, each ``taken`` entry stores its ``at_us`` and clock and
    a copy of the device's ``rule_state`` rows (the state just committed), and horizons are
    upserted. Every event is stored, counted by the rules or not. Clocks are not written:
    a start derives them from the newest stored ts per (device, kind).
    """

    rule_state: dict[tuple[str, str], str] = field(default_factory=dict)
    entries: dict[tuple[str, int], tuple[int, str]] = field(default_factory=dict)
    entry_rules: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    horizons: dict[str, int] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def store(self, events: Sequence[Event], ev: Evaluation) -> None:
        """Store a batch's events with its evaluation's rows (before ``commit``)."""
        self.events += events
        for rule_id, device_id, text in ev.state_rows():
            self.rule_state[(rule_id, device_id)] = text
        changes = ev.checkpoint_changes()
        for device_id, entry in changes.dropped:
            self.entries.pop((device_id, entry), None)
            self.entry_rules.pop((device_id, entry), None)
        for device_id, entry, at_us, clock in changes.taken:
            self.entries[(device_id, entry)] = (at_us, clock)
            self.entry_rules[(device_id, entry)] = {
                r: text for (r, d), text in self.rule_state.items() if d == device_id}
        for device_id, entry, at_us, clock in changes.written:
            self.entries[(device_id, entry)] = (at_us, clock)
            self.entry_rules[(device_id, entry)] = {}
        for rule_id, device_id, entry, text in changes.rows:
            self.entry_rules[(device_id, entry)][rule_id] = text
        for device_id, horizon in changes.horizons:
            self.horizons[device_id] = horizon

    def clock_rows(self) -> list[tuple[str, str]]:
        """Clock rows from the newest stored ts per (device, kind), as ``ioc/service.py`` does."""
        newest: dict[str, dict[str, int]] = {}
        for device_id, kind, ts, _ in self.events:
            kinds = newest.setdefault(device_id, {})
            kinds[kind] = max(ts, kinds.get(kind, ts))
        return [(d, json.dumps({"latest": max(k.values()), "kinds": k})) for d, k in newest.items()]

    def restore(self, rules: Sequence[Rule], devices: Sequence[DeviceMeta],
                lateness_s: float) -> RuleEngine:
        """A fresh engine loaded from the stored rows, as the service starts one."""
        engine = RuleEngine(rules, devices, lateness_s)
        ignored = engine.load_state((r, d, s) for (r, d), s in self.rule_state.items())
        assert ignored == []
        engine.load_clocks(self.clock_rows())
        engine.load_checkpoints(
            [(d, e, at, clock) for (d, e), (at, clock) in self.entries.items()],
            [(r, d, e, s) for (d, e), rows in self.entry_rules.items() for r, s in rows.items()],
            list(self.horizons.items()),
        )
        engine.load_recent(batch(self.events))
        return engine
