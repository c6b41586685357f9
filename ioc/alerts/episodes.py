"""A batch's fire/clear transitions as alert episodes: what each (rule, device) does to alerts.

A batch may fire, clear and fire again for one (rule, device). Written one transition at a
time, that is a statement per step and an alert row version per transition; in a storm (a
flood raising thousands of alerts, each clearing a few readings later, often in the same
batch) it is most of the batch's time. Read per key, in order, the transitions say:

* a **lead clear** (a clear before any fire): the alert open before the batch, if any,
  resolves at its ts; clears after it and before a fire change nothing;
* then **episodes**: a fire opens one, later fires while it is open repeat it (``count``), a
  clear ends it; the next fire opens the next.

The first episode of a key without a lead clear may continue an alert already open (its fires
are then repeats of it). So the batch is two set-based statements: one update of the open
alerts of the keys with a lead clear or a first episode, and one insert of every other
episode, resolved already when it ended in the batch (see ``ioc/alerts/lifecycle.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ioc.rules import Transition


@dataclass(slots=True)
class Episode:
    """Fires of one key from the one that opened it, and the clear that ended it (if any);
    all as positions in the batch's transitions."""

    fires: list[int]
    end: int | None = None


@dataclass(slots=True)
class KeyPlan:
    """What the batch does to one (rule, device)."""

    rule_id: str
    device_id: str
    lead_clear: int | None = None
    episodes: list[Episode] = field(default_factory=list)

    def continues_open(self) -> bool:
        """Whether the first episode may be the alert open before the batch."""
        return self.lead_clear is None and bool(self.episodes)


def plan(transitions: Sequence[Transition]) -> list[KeyPlan]:
    """Per (rule, device), in order of first transition."""
    keys: dict[tuple[str, str], KeyPlan] = {}
    for i, t in enumerate(transitions):
        key = (t.rule_id, t.device_id)
        kp = keys.get(key)
        if kp is None:
            kp = keys[key] = KeyPlan(t.rule_id, t.device_id)
        current = kp.episodes[-1] if kp.episodes and kp.episodes[-1].end is None else None
        if t.action == "fire":
            if current is None:
                kp.episodes.append(Episode([i]))
            else:
                current.fires.append(i)
        elif t.action == "clear":
            if current is not None:
                current.end = i
            elif not kp.episodes and kp.lead_clear is None:
                kp.lead_clear = i
        else:
            raise ValueError(f"unknown transition action {t.action!r}")
    return list(keys.values())
