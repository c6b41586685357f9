"""The simulated stream: deterministic, physically plausible, and shaped as the design says."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import numpy as np
import pytest

from ioc.devices import Device, load_devices_file
from ioc.simulator import EventStream, generate_payloads
from ioc.simulator.fleet import build_fleet

ROOT = Path(__file__).resolve().parents[3]
ICT = timezone(timedelta(hours=7))
NOV = datetime(2026, 11, 23, 0, 0, tzinfo=ICT).timestamp()
MARCH = datetime(2026, 3, 15, 0, 0, tzinfo=ICT).timestamp()
RFC3339_ICT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+07:00")
CAMERA_KINDS = {"camera.fire", "camera.smoke", "camera.crowd", "camera.flooding"}
UNITS = {"water_level": "m", "rainfall": "mm", "salinity": "g/L", "pm25": "µg/m³",
         "traffic_count": "vehicles/5min"}


@pytest.fixture(scope="module")
def devices() -> list[Device]:
    return load_devices_file(ROOT / "config" / "devices.yaml")


def _series(devices: list[Device], start: float, step_s: float, rounds: int,
            scenario: str | None = None) -> tuple[EventStream, np.ndarray, np.ndarray, np.ndarray]:
    """(stream, device index, hours since start, value) for ``rounds`` rounds of the fleet."""
    stream = EventStream(devices, start_ms=round(start * 1000), step_s=step_s, seed=7,
                         scenario=scenario)
    r = stream.readings(0, rounds * len(devices))
    return stream, r.device, (r.ts_ms / 1000 - start) / 3600, r.value


def _of(devices: list[Device], prefix: str) -> list[int]:
    return [i for i, d in enumerate(devices) if d.id.startswith(prefix)]


def test_same_seed_same_stream_other_seed_other_values(devices: list[Device]) -> None:
    a = generate_payloads(devices, 3000, NOV, 60.0, seed=1, form="single")
    assert a == generate_payloads(devices, 3000, NOV, 60.0, seed=1, form="single")
    b = generate_payloads(devices, 3000, NOV, 60.0, seed=2, form="single")
    assert [p for _, p in a] != [p for _, p in b]
    assert [d for d, _ in a] == [d for d, _ in b]


def test_chunking_does_not_change_the_stream(devices: list[Device]) -> None:
    stream = EventStream(devices, start_ms=round(NOV * 1000), step_s=30.0, seed=3)
    whole = stream.payloads(0, 1000)
    assert whole == stream.payloads(0, 337) + stream.payloads(337, 663)


def test_single_payloads_match_the_design_shape(devices: list[Device]) -> None:
    out = generate_payloads(devices, 20 * len(devices), NOV, 300.0, seed=5, form="single")
    ids = set()
    for device_id, raw in out:
        e = msgspec.json.decode(raw)
        assert e["device_id"] == device_id
        assert RFC3339_ICT.fullmatch(e["ts"]), e["ts"]
        datetime.fromisoformat(e["ts"])
        assert isinstance(e["value"], int | float) and np.isfinite(e["value"])
        ids.add(uuid.UUID(e["event_id"]))
        if e["kind"].startswith("camera."):
            assert set(e) == {"event_id", "device_id", "kind", "ts", "value", "attrs"}
            assert e["kind"] in CAMERA_KINDS
            assert 0.0 <= e["value"] <= 1.0
            assert e["attrs"]["label"] == e["kind"].removeprefix("camera.")
            x, y, w, h = e["attrs"]["bbox"]
            assert 0 <= x <= x + w <= 1 and 0 <= y <= y + h <= 1
            assert e["attrs"]["snapshot_url"].startswith("https://")
        else:
            assert list(e) == ["event_id", "device_id", "kind", "ts", "value", "unit", "attrs"]
            assert e["unit"] == UNITS[e["kind"]]
            assert e["attrs"]["station"]
    assert len(ids) == len(out)


def test_epoch_ms_timestamps(devices: list[Device]) -> None:
    out = generate_payloads(devices[:3], 3, NOV, 60.0, seed=1, epoch_ms=True)
    ts = [msgspec.json.decode(p)["ts"] for _, p in out]
    assert all(isinstance(t, int) for t in ts)
    assert ts[0] == round(NOV * 1000)


def test_batch_form_groups_one_devices_readings(devices: list[Device]) -> None:
    out = generate_payloads(devices, 10 * len(devices), NOV, 60.0, seed=1, form="batch",
                            batch_size=10)
    assert len(out) == len(devices)
    single = generate_payloads(devices, 10 * len(devices), NOV, 60.0, seed=1, form="single")
    by_id = {msgspec.json.decode(p)["event_id"]: p for _, p in single}
    for device_id, raw in out:
        events = msgspec.json.decode(raw)
        assert len(events) == 10 and {e["device_id"] for e in events} == {device_id}
        ts = [datetime.fromisoformat(e["ts"]) for e in events]
        assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(ts))
        for e in events:  # the same readings as the single form, with the same ids
            assert msgspec.json.decode(by_id[e["event_id"]]) == e


def test_multi_form_carries_companion_readings(devices: list[Device]) -> None:
    out = generate_payloads(devices, 500, NOV, 60.0, seed=1, form="multi")
    shapes = set()
    for device_id, raw in out:
        m = msgspec.json.decode(raw)
        assert m["device_id"] == device_id
        if "values" in m:
            assert set(m) == {"device_id", "ts", "values"}
            shapes.add(tuple(m["values"]))
        else:
            assert m["kind"] in CAMERA_KINDS
    assert ("water_level", "rainfall") in shapes
    assert ("salinity", "water_level") in shapes


def test_water_level_follows_a_semidiurnal_tide(devices: list[Device]) -> None:
    _, dev, _, value = _series(devices, NOV, 600.0, 30 * 24 * 6)
    station = _of(devices, "hg-ct-wl-001")[0]
    level = value[dev == station]
    assert len(level) > 2 * 24 * 6
    spectrum = np.abs(np.fft.rfft(level - level.mean()))
    freqs = np.fft.rfftfreq(len(level), d=600.0)
    period_h = 1 / freqs[np.argmax(spectrum[1:]) + 1] / 3600
    assert 12.0 <= period_h <= 12.9
    day = level[: 24 * 6]
    assert 0.8 <= day.max() - day.min() <= 3.0  # the Hậu river side: a strong tide
    levels = value[np.isin(dev, [i for i, d in enumerate(devices) if d.kind == "water_level"])]
    assert levels.min() > -0.5 and levels.max() < 2.6
    west = value[dev == _of(devices, "hg-vt-wl-001")[0]][: 24 * 6]
    assert west.max() - west.min() < day.max() - day.min()  # weaker tide inland, to the west


def test_salinity_peaks_in_the_dry_season_and_is_never_negative(devices: list[Device]) -> None:
    _, dev, _, march = _series(devices, MARCH, 900.0, 4 * 24 * 2)
    _, dev_n, _, nov = _series(devices, NOV, 900.0, 4 * 24 * 2)
    west = _of(devices, "hg-hlm-sal-")
    east = _of(devices, "hg-ct-sal-")
    assert march[np.isin(dev, west)].mean() > 2.0
    assert march[np.isin(dev, west)].mean() > 5 * nov[np.isin(dev_n, west)].mean()
    assert march[np.isin(dev, east)].mean() < march[np.isin(dev, west)].mean()
    sal = [i for i, d in enumerate(devices) if d.kind == "salinity"]
    assert march[np.isin(dev, sal)].min() >= 0 and nov[np.isin(dev_n, sal)].min() >= 0


def test_pm25_and_traffic_peak_at_rush_hours(devices: list[Device]) -> None:
    # Start on a Tuesday at 00:00 local time; step 10 min over one day.
    start = datetime(2026, 11, 24, 0, 0, tzinfo=ICT).timestamp()
    _, dev, hours, value = _series(devices, start, 600.0, 24 * 6)
    hour = np.floor(hours % 24)

    def mean_at(kind: str, h: int) -> float:
        ids = [i for i, d in enumerate(devices) if d.kind == kind]
        return float(value[np.isin(dev, ids) & (hour == h)].mean())

    assert mean_at("pm25", 7) > mean_at("pm25", 12) and mean_at("pm25", 17) > mean_at("pm25", 12)
    assert mean_at("traffic_count", 7) > 3 * mean_at("traffic_count", 2)
    assert mean_at("traffic_count", 17) > mean_at("traffic_count", 13)
    traffic = value[np.isin(dev, [i for i, d in enumerate(devices) if d.kind == "traffic_count"])]
    assert traffic.min() >= 0 and np.all(traffic == np.round(traffic))


def test_camera_confidences_and_market_crowds(devices: list[Device]) -> None:
    start = datetime(2026, 11, 24, 0, 0, tzinfo=ICT).timestamp()
    stream = EventStream(devices, start_ms=round(start * 1000), step_s=300.0, seed=9)
    r = stream.readings(0, 24 * 12 * len(devices))
    cams = r.kind == 5
    assert np.all((r.value[cams] >= 0) & (r.value[cams] <= 1))
    hour = ((r.ts_ms / 1000 - start) / 3600) % 24
    market = np.isin(r.device, [i for i, d in enumerate(devices) if "market" in d.tags])
    crowd = cams & market & (r.detection == 2)
    assert r.value[crowd & (hour >= 6) & (hour < 7)].mean() > 0.6
    assert r.value[crowd & (hour >= 23)].mean() < 0.3
    fire = cams & (r.detection == 0)
    assert fire.sum() < 0.01 * cams.sum()  # fires are rare


def test_flood_scenario_keeps_vi_thanh_above_alarm_for_over_ten_minutes(
    devices: list[Device],
) -> None:
    _, dev, hours, value = _series(devices, NOV, 60.0, 4 * 60, scenario="flood")
    _, dev0, _, calm = _series(devices, NOV, 60.0, 4 * 60)
    for station in _of(devices, "hg-vt-wl-"):
        above = value[dev == station] > 1.8
        minutes = hours[dev == station] * 60
        longest = run = 0
        for a in above:
            run = run + 1 if a else 0
            longest = max(longest, run)
        assert longest > 10, devices[station].id  # one reading a minute
        assert minutes[np.argmax(above)] < 60  # the flood arrives within the first hour
        assert calm[dev0 == station].max() < 1.8  # and without the scenario it does not
    rain = value[np.isin(dev, _of(devices, "hg-vt-rf-")) & (hours > 0.5) & (hours < 1.5)]
    assert rain.mean() > 30


def test_flood_scenario_cameras_report_flooding(devices: list[Device]) -> None:
    out = generate_payloads(devices, 90 * len(devices), NOV, 60.0, seed=1, scenario="flood")
    flooding = [msgspec.json.decode(p) for d, p in out if d.startswith("hg-vt-cam-")]
    kinds = [e["kind"] for e in flooding]
    assert kinds.count("camera.flooding") > 20
    assert max(e["value"] for e in flooding if e["kind"] == "camera.flooding") > 0.8


def test_fleet_subset_spreads_over_districts_and_synthesizes_beyond_the_file(
    devices: list[Device],
) -> None:
    subset = build_fleet(devices, 8)
    assert len({d.district for d in subset}) == 8
    assert subset[0].id == "hg-vt-wl-001"
    big = build_fleet(devices, 500)
    assert len(big) == 500 and len({d.id for d in big}) == 500
    extra = big[len(devices):]
    assert {d.district for d in extra} == {d.district for d in devices}
    for d in extra:
        assert re.fullmatch(r"hg-[a-z]+-(wl|rf|sal|pm|tc|cam)-\d{3,}", d.id)
        assert d.lat is not None and d.lon is not None
        assert 9.6 <= d.lat <= 9.95 and 105.35 <= d.lon <= 105.85
    out = generate_payloads(big, 1500, NOV, 60.0, seed=1)
    assert len({d for d, _ in out}) == 500


@pytest.mark.parametrize("form", ["single", "batch", "multi"])
def test_every_event_is_in_exactly_one_payload(form: str) -> None:
    fleet = build_fleet(load_devices_file(ROOT / "config" / "devices.yaml"), 3000)
    n = 200_003
    out = generate_payloads(fleet, n, NOV, 60.0, seed=1, form=form, batch_size=7)
    count = 0
    for _, raw in out:
        m = msgspec.json.decode(raw)
        count += len(m) if isinstance(m, list) else len(m.get("values", [None]))
    assert count == n
