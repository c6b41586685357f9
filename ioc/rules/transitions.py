"""The engine's output for one (rule, device): it started or stopped holding."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule started (``fire``) or stopped (``clear``) holding for a device.

    ``event_index`` is the position in the batch of the event that caused
    it (None for the absence timer, and for events replayed from history);
    ``value`` is the reading — the rate for ``rate`` rules, NaN for absence fires.
    """

    rule_id: str
    device_id: str
    action: str
    ts_us: int
    value: float
    severity: str
    message: str
    kind: str
    event_index: int | None
