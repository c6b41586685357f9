"""Alerts as episodes, and the corrections a late event makes to them.

An alert is one *episode* of a (rule, device): it opens at a ``fire`` transition, counts
further fires while open (``auto_resolve: false`` rules re-arm and fire again), and closes
at a ``clear``. When a late event re-evaluates a device from a checkpoint, the engine has
two transition lists for the replayed span — the one the events known before gave (what
was emitted then) and the one all events give — and :func:`diff` turns their episodes into
corrections: a missed episode is *raised*, a changed one *amended* (start, end, number of
fires), one the full data does not contain *withdrawn*. Applying transitions and then
corrections gives exactly the alerts of evaluating every event in event time.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ioc.rules.transitions import Transition


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """What an alert says about event time: comparable across runs and arrival orders."""

    rule_id: str
    device_id: str
    started_us: int
    resolved_us: int | None
    fires: int


def alert_records(transitions: Iterable[Transition]) -> list[AlertRecord]:
    """The alerts a sequence of transitions makes, applied in order (as the alert store does)."""
    open_: dict[tuple[str, str], list] = {}
    done: list[AlertRecord] = []
    for t in transitions:
        key = (t.rule_id, t.device_id)
        cur = open_.get(key)
        if t.action == "fire":
            if cur is None:
                open_[key] = [t.ts_us, 1]
            else:
                cur[1] += 1
        elif cur is not None:
            done.append(AlertRecord(*key, cur[0], t.ts_us, cur[1]))
            del open_[key]
    done += [AlertRecord(*key, s, None, n) for key, (s, n) in open_.items()]
    return sorted(done, key=lambda r: (r.rule_id, r.device_id, r.started_us))


@dataclass(frozen=True, slots=True)
class Episode:
    """One alert's span in event time as seen from a replayed span.

    ``start_us`` None: the alert was already open at the span's checkpoint (it began
    earlier and is not re-derived); ``end_us`` None: still open. ``fire`` is the
    transition that opened it (None when it began earlier), ``last`` the latest fire.
    """

    start_us: int | None
    end_us: int | None
    fires: int
    fire: Transition | None
    last: Transition | None

    def overlaps(self, other: Episode) -> bool:
        lo = -(2**63) if self.start_us is None else self.start_us
        hi = 2**63 if self.end_us is None else self.end_us
        o_lo = -(2**63) if other.start_us is None else other.start_us
        o_hi = 2**63 if other.end_us is None else other.end_us
        return lo <= o_hi and o_lo <= hi

    def same(self, other: Episode) -> bool:
        return (self.start_us, self.end_us, self.fires) == (other.start_us, other.end_us,
                                                            other.fires)


def episodes(transitions: Sequence[Transition], open_at_start: bool) -> list[Episode]:
    """Episodes of one (rule, device) from its transitions in a span, in order."""
    out: list[Episode] = []
    cur: list | None = [None, 0, None, None] if open_at_start else None
    for t in transitions:
        if t.action == "fire":
            if cur is None:
                cur = [t.ts_us, 1, t, t]
            else:
                cur[1] += 1
                cur[3] = t
        elif cur is not None:
            out.append(Episode(cur[0], t.ts_us, cur[1], cur[2], cur[3]))
            cur = None
    if cur is not None:
        out.append(Episode(cur[0], None, cur[1], cur[2], cur[3]))
    return out


@dataclass(frozen=True, slots=True)
class Correction:
    """A change late data makes to the alerts of one (rule, device).

    ``since_us`` is the replay's checkpoint: an episode with ``start_us`` None is the
    newest alert of the pair that started before it. ``old`` None: raise ``new``;
    ``new`` None: withdraw ``old``; both: amend ``old`` into ``new``.
    """

    rule_id: str
    device_id: str
    since_us: int
    old: Episode | None
    new: Episode | None

    @property
    def action(self) -> str:
        return "raise" if self.old is None else "withdraw" if self.new is None else "amend"


def diff(rule_id: str, device_id: str, since_us: int, old: Sequence[Episode],
         new: Sequence[Episode]) -> list[Correction]:
    """Corrections turning ``old`` episodes into ``new`` ones (both in event-time order).

    Overlapping episodes are the same alert (matched in order, so a split keeps the first
    part and raises the second, a merge keeps the first alert and withdraws the second).
    """
    out: list[Correction] = []
    i = j = 0
    while i < len(old) or j < len(new):
        o = old[i] if i < len(old) else None
        n = new[j] if j < len(new) else None
        if o is not None and n is not None and o.overlaps(n):
            if not o.same(n):
                out.append(Correction(rule_id, device_id, since_us, o, n))
            i += 1
            j += 1
        elif n is None or (o is not None and _before(o, n)):
            out.append(Correction(rule_id, device_id, since_us, o, None))
            i += 1
        else:
            out.append(Correction(rule_id, device_id, since_us, None, n))
            j += 1
    return out


def _before(a: Episode, b: Episode) -> bool:
    """``a`` ends before ``b`` starts (they do not overlap)."""
    a_start = -(2**63) if a.start_us is None else a.start_us
    b_start = -(2**63) if b.start_us is None else b.start_us
    return a_start < b_start
