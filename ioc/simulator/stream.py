"""The simulated event stream: fleet + model + payload form, addressable by event index.

Event ``i`` is always the same reading with the same payload, whatever the
chunking, so the live publisher, the benchmarks and the tests share one
definition of "the stream".
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from datetime import datetime

from ioc.devices import Device
from ioc.simulator.model import SCENARIOS, Model, Readings
from ioc.simulator.payloads import Encoder, Layout

_CHUNK = 65536


class EventStream:
    """Readings and payloads of the simulated fleet, by event index.

    Each device reports every ``step_s`` simulated seconds; ``events_per_step``
    events (one round of the fleet) cover one step.
    """

    def __init__(
        self,
        devices: Sequence[Device],
        *,
        start_ms: int,
        step_s: float,
        seed: int = 0,
        scenario: str | None = None,
        form: str = "single",
        batch_size: int = 50,
        epoch_ms: bool = False,
    ) -> None:
        self.model = Model(devices, start_ms=start_ms, step_s=step_s, seed=seed,
                           scenario=scenario)
        self.layout = Layout(self.model.main_kind, form, batch_size)
        scenario_key = SCENARIOS.index(scenario) + 1 if scenario else 0
        self.encoder = Encoder(self.model, self.layout, epoch_ms=epoch_ms,
                               scenario_key=scenario_key)
        self.events_per_step = self.layout.length / self.layout.rounds

    def readings(self, first: int, n: int) -> Readings:
        dev, kind, rnd, _ = self.layout.locate(first, n)
        return self.model.readings(dev, kind, rnd)

    def payloads(self, first: int, n: int) -> list[tuple[str, bytes]]:
        """``(device_id, payload)`` per message for events first .. first+n-1.

        A message cut by the range is sent in two parts; use :meth:`align` to avoid that.
        """
        out: list[tuple[str, bytes]] = []
        a, end = first, first + n
        while a < end:
            b = min(self.align(a + _CHUNK), end)  # whole messages per chunk
            dev, kind, rnd, msg = self.layout.locate(a, b - a)
            out.extend(self.encoder.encode(self.model.readings(dev, kind, rnd), msg))
            a = b
        return out

    def align(self, index: int) -> int:
        """The first message boundary at or after event ``index``."""
        return self.layout.align(index)

    def sim_time_ms(self, index: int) -> int:
        """Simulated time reached at event ``index``."""
        return self.model.start_ms + round(index / self.events_per_step * self.model.step_s * 1000)


def generate_payloads(
    devices: Sequence[Device],
    n: int,
    start_ts: float | datetime,
    step_s: float,
    seed: int = 0,
    form: str = "single",
    *,
    scenario: str | None = None,
    epoch_ms: bool = False,
    batch_size: int = 50,
) -> list[tuple[str, bytes]]:
    """``(device_id, payload)`` for the first ``n`` events of the simulated stream.

    ``start_ts`` is epoch seconds (or an aware datetime); each device reports every
    ``step_s`` simulated seconds. ``n`` counts events: with the batch and multi
    forms there are fewer payloads than events.
    """
    if isinstance(start_ts, datetime):
        if start_ts.tzinfo is None:
            raise ValueError("start_ts must be timezone-aware")
        start_ts = start_ts.timestamp()
    stream = EventStream(devices, start_ms=round(start_ts * 1000), step_s=step_s, seed=seed,
                         scenario=scenario, form=form, batch_size=batch_size,
                         epoch_ms=epoch_ms)
    # The result is millions of small acyclic objects; letting the cycle collector rescan them
    # while they pile up costs a quarter of the time.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return stream.payloads(0, n)
    finally:
        if was_enabled:
            gc.enable()
