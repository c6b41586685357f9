"""The pure, vectorized Hậu Giang physics: one reading per (device, round), from seed and time alone.

Every random draw is a counter-based hash of (seed, device, kind, round, stream),
not a draw from a stateful generator, so a reading does not depend on how the
stream is chunked or which payload form carries it: the same seed and start give
the same values and the same event ids whether generated in one call or many.
Shared weather (rain per district and hour) hashes the district instead of the
device, so neighbouring stations see the same storm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ioc.devices import Device
from ioc.simulator.fleet import SIMULATED_KINDS, District, district_of, stable_hash

KIND_INDEX = {k: i for i, k in enumerate(SIMULATED_KINDS)}
WATER_LEVEL, RAINFALL, SALINITY, PM25, TRAFFIC, CAMERA = range(len(SIMULATED_KINDS))
DETECTIONS = ("fire", "smoke", "crowd", "flooding")  # camera.<detection>
FIRE, SMOKE, CROWD, FLOODING = range(len(DETECTIONS))
SCENARIOS = ("flood",)

LOCAL_OFFSET_S = 7 * 3600  # Asia/Ho_Chi_Minh has no DST
_M2 = 2 * np.pi / (12.4206 * 3600)  # principal lunar semi-diurnal tide
_S2 = 2 * np.pi / (12.0 * 3600)  # solar semi-diurnal: the M2/S2 beat gives spring and neap tides
_K1 = 2 * np.pi / (23.9345 * 3600)  # diurnal, stronger on the West Sea (Cái Lớn) side
_YEAR_S = 365.2425 * 86400

# Flood scenario timeline in minutes after the simulation start.
FLOOD_RAIN = (0.0, 10.0, 80.0, 95.0)  # ramp up, full, ramp down, over
FLOOD_WATER = (10.0, 40.0, 100.0, 160.0)
FLOOD_LEVEL = 2.08  # m at the plateau in Vị Thanh, ± 0.1 of tide: always above 1.8
FLOOD_RAIN_MM_H = 70.0
FLOOD_END_S = FLOOD_WATER[3] * 60

_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on uint64 (wrapping arithmetic is the point)."""
    x = x + _GOLDEN
    x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def _unit(x: np.ndarray) -> np.ndarray:
    """uint64 hash → uniform float in [0, 1)."""
    return (x >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _bump(year_frac: np.ndarray, center: float, width: float) -> np.ndarray:
    """A yearly Gaussian bump around ``center`` (fraction of the year), wrapping at new year."""
    d = (year_frac - center + 0.5) % 1.0 - 0.5
    return np.exp(-0.5 * (d / width) ** 2)


@dataclass(slots=True)
class Readings:
    """One chunk of simulated readings, one entry per event in every array.

    ``detection`` is the camera detection (index into DETECTIONS) or -1;
    ``bbox`` (x, y, w, h, normalized) and ``people`` only mean something for cameras.
    """

    device: np.ndarray  # int index into the fleet
    kind: np.ndarray  # int index into SIMULATED_KINDS
    round: np.ndarray  # int64 reading number of the device
    ts_ms: np.ndarray  # int64 epoch milliseconds
    value: np.ndarray  # float64
    detection: np.ndarray
    bbox: np.ndarray  # float64 (n, 4)
    people: np.ndarray  # int64


class Model:
    """Readings for ``devices`` at given rounds; pure and deterministic given ``seed``.

    Round ``r`` of device ``i`` (of ``D``) is at ``start_ms + (r + i / D) * step_s``:
    each device reports every ``step_s`` simulated seconds, staggered so the fleet
    reports evenly in time.
    """

    def __init__(
        self,
        devices: Sequence[Device],
        *,
        start_ms: int,
        step_s: float,
        seed: int = 0,
        scenario: str | None = None,
    ) -> None:
        if not devices:
            raise ValueError("no devices to simulate")
        if step_s <= 0:
            raise ValueError("step_s must be greater than zero")
        if scenario is not None and scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r} (known: {', '.join(SCENARIOS)})")
        unknown = sorted({d.kind for d in devices if d.kind not in KIND_INDEX})
        if unknown:
            raise ValueError(f"no model for device kinds: {', '.join(unknown)}")
        self.devices = list(devices)
        self.start_ms = int(start_ms)
        self.step_s = float(step_s)
        self.seed = int(seed)
        self.scenario = scenario
        n = len(self.devices)
        districts: list[District] = [district_of(d) for d in self.devices]
        self.main_kind = np.array([KIND_INDEX[d.kind] for d in self.devices], dtype=np.int64)
        self.stagger_s = np.arange(n, dtype=np.float64) / n * self.step_s
        self.device_key = np.array([stable_hash(d.id) for d in self.devices], dtype=np.uint64)
        self.district_key = np.array([stable_hash(x.code) for x in districts], dtype=np.uint64)
        self.level_base = np.array([x.level_base for x in districts])
        self.tide_amp = np.array([x.tide_amp for x in districts])
        self.tide_lag_s = np.array([x.tide_lag_h * 3600 for x in districts])
        self.salinity_exposure = np.array([x.salinity_exposure for x in districts])
        self.pm_base = np.array([x.pm_base for x in districts])
        in_flood = [x.code == "vt" for x in districts]
        near_flood = [x.code in ("vth", "hlm", "lm") for x in districts]
        self.flood_weight = np.where(in_flood, 1.0, np.where(near_flood, 0.3, 0.0))
        self.flood_core = np.array(in_flood)
        tags = [set(d.tags) for d in self.devices]
        self.market = np.array(["market" in t for t in tags])
        self.gathering = np.array([bool(t & {"park", "crowd", "transport"}) for t in tags])
        self.floodcam = np.array([bool(t & {"flood", "riverbank"}) for t in tags])
        self.fire_risk = np.array([
            0.004 if "forest" in t else 0.0015 if t & {"warehouse", "industrial"} else 0.0004
            for t in tags
        ])
        self.industrial = np.array(["industrial" in t for t in tags])
        self.road_scale = np.array([
            190.0 if "QL1A" in t else 120.0 if any(x.startswith("QL") for x in t)
            else 95.0 if "urban" in t else 60.0
            for t in tags
        ])
        # Per-device calibration: the same station always reads a little high or low.
        cal = _unit(_mix(self.device_key ^ _U64((self.seed * 0xCA1) & 0xFFFFFFFFFFFFFFFF)))
        self.gain = 0.85 + 0.3 * cal
        self.offset = (cal - 0.5) * 0.12
        self._base = _mix(np.array([self.seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]

    # -- randomness -------------------------------------------------------------------

    def _hash(self, key: np.ndarray, counter: np.ndarray, stream: int) -> np.ndarray:
        salt = _mix(np.array([self._base ^ _U64(stream * 0x100000001B3)], dtype=np.uint64))[0]
        return _mix(key ^ _mix(counter.astype(np.uint64) ^ salt))

    def _uniform(self, key: np.ndarray, counter: np.ndarray, stream: int) -> np.ndarray:
        return _unit(self._hash(key, counter, stream))

    def _normal(self, key: np.ndarray, counter: np.ndarray, stream: int) -> np.ndarray:
        u1 = self._uniform(key, counter, stream)
        u2 = self._uniform(key, counter, stream + 7919)
        return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2 * np.pi * u2)

    # -- shared fields ----------------------------------------------------------------

    def ts_ms(self, dev: np.ndarray, rnd: np.ndarray) -> np.ndarray:
        offset = rnd.astype(np.float64) * self.step_s + self.stagger_s[dev]
        return self.start_ms + np.floor(offset * 1000.0).astype(np.int64)

    def _minutes_in(self, t: np.ndarray) -> np.ndarray:
        return (t - self.start_ms / 1000.0) / 60.0

    def tide(self, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Tide height (m) around the mean: M2 + S2 (spring/neap) + K1."""
        tt = t - self.tide_lag_s[dev]
        a = self.tide_amp[dev]
        return a * (np.cos(_M2 * tt) + 0.3 * np.cos(_S2 * tt + 0.7)) + 0.2 * np.cos(_K1 * tt + 1.3)

    def rain_rate(self, dev: np.ndarray, hour: np.ndarray) -> np.ndarray:
        """Rain intensity (mm/h) over the device's district during epoch hour ``hour``."""
        t = hour.astype(np.float64) * 3600 + 1800
        local_h = ((t + LOCAL_OFFSET_S) % 86400) / 3600
        year = (t / _YEAR_S) % 1.0
        wet = _bump(year, 0.70, 0.14)  # May–November monsoon, peaking around September
        afternoon = np.exp(-0.5 * ((local_h - 16.0) / 2.5) ** 2)
        p = 0.02 + wet * (0.10 + 0.25 * afternoon)
        key = self.district_key[dev]
        raining = self._uniform(key, hour, 11) < p
        intensity = -(4.0 + 8.0 * wet) * np.log1p(-self._uniform(key, hour, 12))
        return np.where(raining, np.minimum(intensity, 120.0), 0.0)

    def _flood_rain(self, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
        m = self._minutes_in(t)
        a, b, c, d = FLOOD_RAIN
        shape = _smoothstep(a, b, m) * (1 - _smoothstep(c, d, m))
        return FLOOD_RAIN_MM_H * self.flood_weight[dev] * shape

    def rain_last_hour(self, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Rain (mm) in the hour before ``t``: exact for the hourly weather, sampled for the flood."""
        hour = np.floor(t / 3600).astype(np.int64)
        frac = t / 3600 - hour
        mm = frac * self.rain_rate(dev, hour) + (1 - frac) * self.rain_rate(dev, hour - 1)
        if self.scenario == "flood":
            for k in range(6):
                mm = mm + self._flood_rain(dev, t - (5 + 10 * k) * 60) / 6
        return mm

    def flood_surge(self, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
        """0..1: how far the flood scenario has taken over the water level at ``t``."""
        if self.scenario != "flood":
            return np.zeros(len(dev))
        a, b, c, d = FLOOD_WATER
        m = self._minutes_in(t)
        return _smoothstep(a, b, m) * (1 - _smoothstep(c, d, m)) * self.flood_weight[dev]

    def water_level(self, dev: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Noise-free water level (m) at the district's reference station."""
        year = ((t + LOCAL_OFFSET_S) / _YEAR_S) % 1.0
        season = 0.22 * _bump(year, 0.79, 0.08) - 0.08 * _bump(year, 0.29, 0.08)
        rain = 0.0035 * self.rain_last_hour(dev, t)
        normal = self.level_base[dev] + season + self.tide(dev, t) + rain
        w = self.flood_surge(dev, t)
        core = self.flood_core[dev]
        flooded = FLOOD_LEVEL + 0.1 * self.tide(dev, t) / np.maximum(self.tide_amp[dev], 0.1)
        return np.where(core, (1 - w) * normal + w * flooded, normal + 0.35 * w)

    # -- readings ---------------------------------------------------------------------

    def readings(self, dev: np.ndarray, kind: np.ndarray, rnd: np.ndarray) -> Readings:
        """Readings of kind ``kind`` by devices ``dev`` at their rounds ``rnd`` (equal-length arrays)."""
        dev = np.asarray(dev, dtype=np.int64)
        kind = np.asarray(kind, dtype=np.int64)
        rnd = np.asarray(rnd, dtype=np.int64)
        n = len(dev)
        ts_ms = self.ts_ms(dev, rnd)
        t = ts_ms / 1000.0
        key = self.device_key[dev] ^ (kind.astype(np.uint64) << _U64(56))
        value = np.zeros(n)
        detection = np.full(n, -1, dtype=np.int64)
        bbox = np.zeros((n, 4))
        people = np.zeros(n, dtype=np.int64)
        local_h = ((t + LOCAL_OFFSET_S) % 86400) / 3600
        for k in np.unique(kind).tolist():
            m = np.flatnonzero(kind == k)
            d, tm, km, rm = dev[m], t[m], key[m], rnd[m]
            if k == WATER_LEVEL:
                v = self.water_level(d, tm) + 0.3 * self.offset[d] + 0.01 * self._normal(km, rm, 1)
                value[m] = np.round(v, 3)
            elif k == RAINFALL:
                v = self.rain_last_hour(d, tm) * self.gain[d]
                value[m] = np.round(v / 0.2) * 0.2  # tipping bucket: 0.2 mm a tip
                value[m] = np.round(value[m], 1)
            elif k == SALINITY:
                value[m] = np.round(self._salinity(d, tm, km, rm), 2)
            elif k == PM25:
                value[m] = np.round(self._pm25(d, tm, local_h[m], km, rm), 1)
            elif k == TRAFFIC:
                value[m] = self._traffic(d, tm, local_h[m], km, rm)
            else:
                conf, det, box, ppl = self._camera(d, tm, local_h[m], km, rm)
                value[m], detection[m], bbox[m], people[m] = conf, det, box, ppl
        return Readings(dev, kind, rnd, ts_ms, value, detection, bbox, people)

    def _salinity(self, d: np.ndarray, t: np.ndarray, key: np.ndarray, rnd: np.ndarray
                  ) -> np.ndarray:
        """g/L: intrusion through the dry season (peak in March), pushed in by the flood tide."""
        year = ((t + LOCAL_OFFSET_S) / _YEAR_S) % 1.0
        season = _bump(year, 0.20, 0.085)
        tide = self.tide(d, t - 1.5 * 3600) / np.maximum(self.tide_amp[d] * 1.5, 0.1)
        peak = 6.5 * self.salinity_exposure[d] * self.gain[d]
        fresh = 0.15 + 0.05 * self.gain[d]
        dilution = 1.0 / (1.0 + self.rain_last_hour(d, t) / 40.0)
        v = fresh + peak * season * (0.65 + 0.35 * tide) * dilution
        return np.maximum(v + 0.02 * self._normal(key, rnd, 2), 0.0)

    def _pm25(self, d: np.ndarray, t: np.ndarray, local_h: np.ndarray, key: np.ndarray,
              rnd: np.ndarray) -> np.ndarray:
        """µg/m³: background + rush hours (7h, 17h local) + dry-season haze, washed out by rain."""
        year = ((t + LOCAL_OFFSET_S) / _YEAR_S) % 1.0
        rush = 18 * np.exp(-0.5 * ((local_h - 7.0) / 1.0) ** 2)
        rush += 22 * np.exp(-0.5 * ((local_h - 17.5) / 1.2) ** 2)
        night = 6 * np.exp(-0.5 * ((((local_h - 2.0 + 12) % 24) - 12) / 2.5) ** 2)
        base = self.pm_base[d] + 8 * self.industrial[d] + 14 * _bump(year, 0.12, 0.1)
        washout = 1.0 / (1.0 + self.rain_last_hour(d, t) / 6.0)
        v = (base + rush + night) * washout * self.gain[d]
        return v * np.exp(0.15 * self._normal(key, rnd, 3))

    def _traffic(self, d: np.ndarray, t: np.ndarray, local_h: np.ndarray, key: np.ndarray,
                 rnd: np.ndarray) -> np.ndarray:
        """Vehicles per 5 minutes: night lull, rush hours at 7h and 17h, quieter weekends."""
        day = np.floor((t + LOCAL_OFFSET_S) / 86400)
        weekend = ((day + 3) % 7) >= 5  # 1970-01-01 was a Thursday
        daytime = _smoothstep(4.5, 6.5, local_h) * (1 - _smoothstep(20.0, 23.0, local_h))
        rush = (np.exp(-0.5 * ((local_h - 7.0) / 0.8) ** 2)
                + 1.1 * np.exp(-0.5 * ((local_h - 17.2) / 1.0) ** 2))
        profile = 0.08 + 0.75 * daytime + np.where(weekend, 0.45, 1.0) * rush
        rain = 1.0 - 0.15 * (self.rain_last_hour(d, t) > 5.0)
        flood = 1.0 - 0.7 * self.flood_surge(d, t)
        lam = self.road_scale[d] * self.gain[d] * profile * rain * flood
        v = np.round(lam + np.sqrt(lam) * self._normal(key, rnd, 4))
        return np.maximum(v, 0.0)

    def _camera(self, d: np.ndarray, t: np.ndarray, local_h: np.ndarray, key: np.ndarray,
                rnd: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One detection per reading: a fire episode, a false alarm, flooding, or crowd density."""
        n = len(d)
        year = ((t + LOCAL_OFFSET_S) / _YEAR_S) % 1.0
        # Fire episodes: per camera and 6-hour window, rarely, 20–45 minutes long, smoke first.
        window = np.floor(t / 21600).astype(np.int64)
        dry = 1.0 + 2.0 * _bump(year, 0.15, 0.1)
        dkey = self.device_key[d]
        episode = self._uniform(dkey, window, 21) < self.fire_risk[d] * dry
        begin = window * 21600 + self._uniform(dkey, window, 22) * (21600 - 2700)
        length = 1200 + 1500 * self._uniform(dkey, window, 23)
        since = t - begin
        burning = episode & (since >= 0) & (since < length)
        u = self._uniform(key, rnd, 24)
        det = np.full(n, CROWD, dtype=np.int64)

        crowd = np.where(
            self.market[d],
            0.85 * np.exp(-0.5 * ((local_h - 6.5) / 1.3) ** 2)
            + 0.45 * np.exp(-0.5 * ((local_h - 16.5) / 1.2) ** 2),
            np.where(self.gathering[d], 0.7 * np.exp(-0.5 * ((local_h - 19.5) / 1.5) ** 2), 0.1),
        )
        conf = np.clip(crowd + 0.07 * self._normal(key, rnd, 25) + 0.08, 0.02, 0.99)
        level = self.water_level(d, t)
        flood = np.where(self.floodcam[d], 1 / (1 + np.exp(-(level - 1.6) / 0.07)), 0.0)
        flood = np.maximum(flood, 0.9 * self.flood_surge(d, t) * self.flood_core[d])
        flooding = flood > 0.35
        det[flooding] = FLOODING
        conf = np.where(flooding, np.clip(flood - 0.05 + 0.05 * u, 0.0, 0.99), conf)
        false_smoke = u < 0.002
        false_fire = (u >= 0.002) & (u < 0.0025)
        det[false_smoke] = SMOKE
        det[false_fire] = FIRE
        conf = np.where(false_smoke | false_fire, 0.3 + 0.4 * self._uniform(key, rnd, 26), conf)
        smoke_phase = burning & (since < 300)
        det[burning] = np.where(smoke_phase[burning], SMOKE, FIRE)
        conf = np.where(burning, np.clip(0.84 + 0.07 * self._normal(key, rnd, 27), 0.6, 0.99), conf)

        box = np.empty((n, 4))
        box[:, 2] = 0.08 + 0.3 * self._uniform(key, rnd, 28)
        box[:, 3] = 0.08 + 0.3 * self._uniform(key, rnd, 29)
        box[:, 0] = (1 - box[:, 2]) * self._uniform(key, rnd, 30)
        box[:, 1] = (1 - box[:, 3]) * self._uniform(key, rnd, 31)
        people = np.where(det == CROWD, np.round(conf * conf * 180), 0).astype(np.int64)
        return np.round(conf, 3), det, np.round(box, 3), people
