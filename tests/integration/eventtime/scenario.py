"""A six-hour flood over four areas of former Hậu Giang (now Cần Thơ city), and how it arrives.

:func:`flood` gives every reading the devices of ``devices.yaml`` take (the truth): river and
canal gauges rising to a crest and receding (each area its own crest, Phụng Hiệp hovering
around its alarm level), a rain band crossing the province, fire cameras scoring every two
minutes with three real fires and a few false positives, a canal gauge without power for an
hour and one that dies for good.

:func:`deliveries` cuts the truth into HTTP posts the way the field sends it, step by step in
event time (every 5 minutes of the flood): gateways post what their devices sent live, each post
shuffled and some re-sent (the same events again); radio gauges lose readings on the air that
their loggers upload with the rest of their buffered half hour; logger-only gauges upload their
half hour (Long Mỹ's its hour) in one post in random order; rain gauges and cameras deliver
some readings late. Every reading arrives at least once and at most about half an hour after
its device's newest (well within the 1 h lateness).

The alerts stored after all of it must be those of evaluating every distinct reading in event
time: :func:`expected_alerts` (``ioc.rules.reference``), compared with :func:`stored_alerts`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import numpy as np

from ioc.devices import load_devices_file
from ioc.rules import AlertRecord, DeviceMeta, RuleBatch, load_rules_file
from ioc.rules.reference import reference_alerts

HERE = Path(__file__).parent
DEVICES_FILE = HERE / "devices.yaml"
RULES_FILE = HERE / "rules.yaml"
S = 1_000_000
MINUTE = 60 * S
STEP = 5 * MINUTE
HOURS = 6
STEPS = HOURS * 60 * MINUTE // STEP
VN = dt.timezone(dt.timedelta(hours=7))
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
AREAS = ("vt", "lm", "nb", "ph")
CREST_H = {"vt": 2.8, "lm": 3.1, "nb": 3.4, "ph": 3.7}       # hours into the flood
RISE_M = {"vt": 1.0, "lm": 0.85, "nb": 1.05, "ph": 0.8}      # Phụng Hiệp hovers near 1.9 m
RAIN_PEAK_H = {"vt": 1.2, "lm": 1.6, "nb": 2.0, "ph": 2.4}
FIRES_H = {"hg-vt-cam-001": (1.5, 1.85, 0.15), "hg-nb-cam-002": (3.7, 4.2, 0.15),
           "hg-ph-cam-001": (5.0, 5.3, 0.35)}                 # (from, to, share of dips)
# Live link of each device class: share of readings lost on the air (a logger uploads them
# later) and share delivered late with how many steps of delay.
LOST = {"wl-001": 0.3}
DELAYED = {"rf-001": (0.2, 2), "cam-001": (0.25, 3), "cam-002": (0.25, 3)}
POWER_CUT = ("hg-vt-wl-002", 2.0, 3.0)   # no readings at all for an hour: gauge-silent fires
DIES = ("hg-ph-wl-002", 4.5)             # and never comes back: gauge-silent stays open
HOURLY_LOGGER = "hg-lm-wl-003"           # uploads its hour: the absence timer calls it silent
PAUSE_STEP = 21                          # ... which the test waits to see once (then withdrawn)


@dataclass(frozen=True, slots=True)
class Reading:
    event_id: str
    device_id: str
    kind: str
    ts_us: int
    value: float
    unit: str

    def payload(self) -> dict[str, object]:
        ts = (EPOCH + dt.timedelta(microseconds=self.ts_us)).astimezone(VN)
        return {"event_id": self.event_id, "device_id": self.device_id, "kind": self.kind,
                "ts": ts.isoformat(), "value": self.value, "unit": self.unit}


@dataclass(slots=True)
class Post:
    """One HTTP request (or, over MQTT, one message per device) of the delivery plan."""

    readings: list[Reading]
    step: int
    what: str                      # live, upload:<device>, resent
    pause_after: bool = False      # the test waits for the absence timer after this post

    def body(self) -> bytes:
        return json.dumps([r.payload() for r in self.readings], ensure_ascii=False).encode()

    def mqtt(self) -> list[tuple[str, bytes]]:
        """The post as MQTT messages: one per device, on its own topic (an array of its
        readings in the post's order)."""
        per_device: dict[str, list[Reading]] = defaultdict(list)
        for r in self.readings:
            per_device[r.device_id].append(r)
        return [(f"ioc/v1/events/{device}",
                 json.dumps([r.payload() for r in rs], ensure_ascii=False).encode())
                for device, rs in per_device.items()]


def flood_start(now_us: int | None = None) -> int:
    """The flood's first instant: it ends five minutes before now, on a whole minute."""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    return (now_us - 5 * MINUTE - STEPS * STEP) // MINUTE * MINUTE


def _bump(h: float, crest: float, width: float = 1.2) -> float:
    return math.exp(-(((h - crest) / width) ** 2))


def flood(start_us: int, seed: int = 21, hours: int = HOURS) -> list[Reading]:
    """Every reading of the flood, ordered by device then time."""
    rng = random.Random(seed)
    out: list[Reading] = []
    end_us = start_us + hours * 60 * MINUTE

    def add(device: str, kind: str, t_us: int, value: float, unit: str) -> None:
        out.append(Reading(f"{device}/{kind}/{len(out):06d}", device, kind, t_us, value, unit))

    for a, area in enumerate(AREAS):
        for n, bias in ((1, 0.0), (2, -0.04), (3, 0.03)):
            device = f"hg-{area}-wl-{n:03d}"
            t_us = start_us + rng.randrange(1, 120) * S
            while t_us <= end_us:
                h = (t_us - start_us) / (3600 * S)
                cut = (device == POWER_CUT[0] and POWER_CUT[1] <= h < POWER_CUT[2]) or (
                    device == DIES[0] and h >= DIES[1])
                if not cut:
                    level = (1.15 + bias + RISE_M[area] * _bump(h, CREST_H[area])
                             + 0.06 * math.sin(2 * math.pi * h / 12.42 + a)  # the tide
                             + 0.03 * math.sin(2 * math.pi * h * 1.5 + n)   # a seiche
                             + rng.gauss(0, 0.004))
                    add(device, "water_level", t_us, round(level, 3), "m")
                t_us += 2 * MINUTE
        device = f"hg-{area}-rf-001"
        t_us = start_us + rng.randrange(1, 300) * S
        while t_us <= end_us:
            h = (t_us - start_us) / (3600 * S)
            rain = 62 * _bump(h, RAIN_PEAK_H[area], 0.6) + abs(rng.gauss(0, 3))
            add(device, "rainfall", t_us, round(rain, 1), "mm/h")
            t_us += 5 * MINUTE
        for n in (1, 2):
            device = f"hg-{area}-cam-{n:03d}"
            t_us = start_us + rng.randrange(1, 120) * S
            fire = FIRES_H.get(device)
            while t_us <= end_us:
                h = (t_us - start_us) / (3600 * S)
                if fire is not None and fire[0] <= h < fire[1]:
                    score = (rng.uniform(0.45, 0.75) if rng.random() < fire[2]
                             else rng.uniform(0.82, 0.99))
                elif rng.random() < 0.03:
                    score = rng.uniform(0.8, 0.9)  # a false positive: one detection alone
                else:
                    score = rng.uniform(0.02, 0.35)
                add(device, "camera.fire", t_us, round(score, 3), "confidence")
                t_us += 2 * MINUTE
    return out


def _step_of(start_us: int, ts_us: int) -> int:
    """The step whose window (start + (k-1)·STEP, start + k·STEP] holds ``ts_us`` (at least 1)."""
    return max(1, -(-(ts_us - start_us) // STEP))


def deliveries(readings: Sequence[Reading], start_us: int, seed: int = 21, *,
               steps: int = STEPS, pause_step: int | None = PAUSE_STEP) -> list[Post]:
    """The posts, in the order they are sent (see the module's docstring)."""
    rng = random.Random(seed * 7919 + 1)
    live: dict[int, list[Reading]] = defaultdict(list)
    by_device: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        by_device[r.device_id].append(r)
        role = r.device_id.split("-", 2)[2]
        k = _step_of(start_us, r.ts_us)
        if role == "wl-003" or rng.random() < LOST.get(role, 0.0):
            continue  # logger-only, or lost on the air: an upload brings it
        share, most = DELAYED.get(role, (0.0, 0))
        live[k + (rng.randint(1, most) if rng.random() < share else 0)].append(r)
    # Loggers: radio gauges and logger-only gauges upload their buffer every half hour (each
    # area at its own minute), the hourly one every hour; the last upload comes at the end.
    schedule: dict[str, tuple[int, int]] = {}
    for a, area in enumerate(AREAS):
        schedule[f"hg-{area}-wl-001"] = (6, (2 + a) % 6)
        schedule[f"hg-{area}-wl-003"] = (6, (4 + a) % 6)
    schedule[HOURLY_LOGGER] = (12, 0)
    uploaded_to = {d: start_us - 1 for d in schedule}

    def upload(device: str, k: int, upto_us: int) -> Post | None:
        batch = [r for r in by_device[device] if uploaded_to[device] < r.ts_us <= upto_us]
        uploaded_to[device] = upto_us
        if not batch:
            return None
        rng.shuffle(batch)
        return Post(batch, k, f"upload:{device}")

    posts: list[Post] = []
    previous: list[Post] = []
    for k in range(1, steps + 2):
        last = k == steps + 1
        frontier = start_us + min(k, steps) * STEP
        now: list[Post] = []
        due = live.pop(k, [])
        if last:
            due += [r for j in sorted(live) for r in live.pop(j)]
        rng.shuffle(due)
        pause = k == pause_step
        cuts = [] if pause or len(due) < 4 else sorted(rng.sample(range(1, len(due)),
                                                                 rng.randint(0, 2)))
        for lo, hi in zip([0, *cuts], [*cuts, len(due)], strict=True):
            if hi > lo:
                now.append(Post(due[lo:hi], k, "live"))
        for device, (every, at) in schedule.items():
            if last or k % every == at:
                p = upload(device, k, frontier if not last else 2**62)
                if p is not None:
                    now.append(p)
        if pause:
            # The live post last, so that the absence timer's "now" follows the frontier.
            now.sort(key=lambda p: p.what == "live")
            now[-1].pause_after = True
        else:
            rng.shuffle(now)
            if rng.random() < 0.3 and (now or previous):
                again = rng.choice(now + previous)
                now.append(Post(list(again.readings), k, "resent"))
        posts += now
        previous = now
    sent = {r for p in posts for r in p.readings}
    assert sent == set(readings), "the plan must deliver every reading"
    return posts


# ---- expectations and what is stored ------------------------------------------------------


def device_metas() -> list[DeviceMeta]:
    return [DeviceMeta(d.id, d.name, d.district, d.tags) for d in load_devices_file(DEVICES_FILE)]


def expected_alerts(readings: Iterable[Reading], now_us: int | None = None,
                    rules_file: Path = RULES_FILE) -> list[AlertRecord]:
    """The alerts of evaluating every distinct reading in event time (and the absence timer
    once at ``now_us``)."""
    distinct = sorted(set(readings), key=lambda r: (r.device_id, r.ts_us, r.kind))
    batch = RuleBatch([r.device_id for r in distinct], [r.kind for r in distinct],
                      np.array([r.ts_us for r in distinct], dtype=np.int64),
                      np.array([r.value for r in distinct], dtype=np.float64))
    return reference_alerts(load_rules_file(rules_file), device_metas(), batch, now_us)


def _us(t: dt.datetime | None) -> int | None:
    return None if t is None else (t - EPOCH) // dt.timedelta(microseconds=1)


async def _fetch(dsn: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


def sql(dsn: str, query: str, *args: object) -> list[asyncpg.Record]:
    """One statement on a connection of its own, from synchronous test code."""
    return asyncio.run(_fetch(dsn, query, *args))


def stored_alerts(dsn: str) -> list[AlertRecord]:
    """The alerts in the store, withdrawn ones left out, as event-time records."""
    rows = sql(dsn, "SELECT rule_id, device_id, started_at, resolved_at, count FROM alerts"
                    " WHERE resolved_by IS DISTINCT FROM 'late-data'"
                    " ORDER BY rule_id, device_id, started_at")
    return [AlertRecord(r["rule_id"], r["device_id"], _us(r["started_at"]),  # type: ignore[arg-type]
                        _us(r["resolved_at"]), r["count"]) for r in rows]


def difference(got: Sequence[AlertRecord], want: Sequence[AlertRecord]) -> str:
    """A readable account of how two alert lists differ (times of day in Vietnam)."""
    def show(r: AlertRecord) -> str:
        def t(us: int | None) -> str:
            return "open" if us is None else (EPOCH + dt.timedelta(microseconds=us)).astimezone(
                VN).strftime("%H:%M:%S")
        return f"{r.rule_id} {r.device_id} {t(r.started_us)}–{t(r.resolved_us)} ×{r.fires}"

    extra = [show(r) for r in got if r not in want]
    missing = [show(r) for r in want if r not in got]
    return (f"{len(got)} stored vs {len(want)} expected\n  stored, not expected: {extra[:15]}"
            f"\n  expected, not stored: {missing[:15]}")


def wait_until(check: Callable[[], bool], timeout: float, poll_s: float = 0.25) -> bool:
    """Poll ``check`` until it holds or ``timeout`` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)


def wait_for_alerts(dsn: str, want: Sequence[AlertRecord], timeout: float = 30.0
                    ) -> list[AlertRecord]:
    """The stored alerts once they equal ``want`` (or whatever they are after ``timeout``)."""
    got: list[AlertRecord] = []

    def same() -> bool:
        nonlocal got
        got = stored_alerts(dsn)
        return got == list(want)

    wait_until(same, timeout, poll_s=0.5)
    return got


@dataclass
class Tally:
    """What the service should answer to each post: events new to it, and duplicates."""

    seen: set[tuple[str, int, str]] = field(default_factory=set)

    def expect(self, post: Post) -> tuple[int, int]:
        keys = [(r.device_id, r.ts_us, r.event_id) for r in post.readings]
        new = sum(k not in self.seen for k in keys)
        self.seen.update(keys)
        return new, len(keys) - new
