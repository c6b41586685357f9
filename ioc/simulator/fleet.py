"""Hậu Giang districts and the simulated fleet: a spread-out subset of the registry or extra devices.

District parameters drive the physics (tide amplitude grows towards the Hậu
river in the east, salinity intrudes from the Cái Lớn river in the west), so a
synthesized device behaves like a real one in the same place.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from ioc.devices import Device

log = logging.getLogger(__name__)

UNITS: dict[str, str] = {
    "water_level": "m",
    "rainfall": "mm",
    "salinity": "g/L",
    "pm25": "µg/m³",
    "traffic_count": "vehicles/5min",
}
SIMULATED_KINDS = (*UNITS, "camera")
KIND_CODES = {"water_level": "wl", "rainfall": "rf", "salinity": "sal", "pm25": "pm",
              "traffic_count": "tc", "camera": "cam"}


@dataclass(frozen=True, slots=True)
class District:
    """Where a device sits and what that means for its readings."""

    code: str
    name: str
    lat: float
    lon: float
    level_base: float  # mean water level, m
    tide_amp: float  # M2 amplitude, m (the Hậu river side has the larger tide)
    tide_lag_h: float  # tide arrives later the further west
    salinity_exposure: float  # 0 = fresh all year, 1 = worst dry-season intrusion
    pm_base: float  # background PM2.5, µg/m³


DISTRICTS: tuple[District, ...] = (
    District("vt", "Vị Thanh", 9.784, 105.470, 0.72, 0.36, 3.0, 0.80, 22.0),
    District("nb", "Ngã Bảy", 9.816, 105.819, 0.95, 0.62, 0.8, 0.20, 26.0),
    District("lm", "Long Mỹ", 9.680, 105.567, 0.78, 0.34, 2.6, 0.70, 18.0),
    District("hlm", "Huyện Long Mỹ", 9.670, 105.450, 0.74, 0.33, 3.2, 1.00, 14.0),
    District("vth", "Vị Thủy", 9.800, 105.560, 0.80, 0.40, 2.2, 0.45, 16.0),
    District("ct", "Châu Thành", 9.905, 105.815, 1.00, 0.72, 0.0, 0.30, 24.0),
    District("cta", "Châu Thành A", 9.915, 105.660, 0.92, 0.52, 1.2, 0.15, 24.0),
    District("ph", "Phụng Hiệp", 9.770, 105.720, 0.90, 0.50, 1.5, 0.25, 18.0),
)
DISTRICT_BY_NAME = {d.name: d for d in DISTRICTS}
#: Districts that are not in the table (or devices without one) get these middle-of-the-province
#: parameters.
DEFAULT_DISTRICT = DISTRICTS[4]

_SYNTH_KINDS = ("water_level", "camera", "traffic_count", "rainfall", "pm25",
                "water_level", "salinity", "camera", "traffic_count", "pm25")
_SYNTH_NAMES = {
    "water_level": "Trạm mực nước",
    "rainfall": "Trạm đo mưa",
    "salinity": "Trạm đo mặn",
    "pm25": "Trạm không khí",
    "traffic_count": "Điểm đếm xe",
    "camera": "Camera AI",
}
_SYNTH_TAGS = {
    "water_level": ("canal", "tide"),
    "rainfall": ("rain",),
    "salinity": ("canal", "salinity"),
    "pm25": ("air", "urban"),
    "traffic_count": ("road", "urban"),
}
_SYNTH_CAMERA_TAGS = (("market",), ("riverbank", "flood"), ("crossroad", "crowd"), ("park",))
_ID_NUMBER = re.compile(r"^(.*-)(\d+)$")


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (Python's ``hash`` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


def district_of(device: Device) -> District:
    return DISTRICT_BY_NAME.get(device.district or "", DEFAULT_DISTRICT)


def build_fleet(devices: Sequence[Device], count: int | None = None) -> list[Device]:
    """The devices to simulate: all of ``devices``, a spread-out subset, or them plus synthesized ones.

    Devices of kinds the simulator cannot model are left out (logged once).
    A subset takes devices round-robin over districts and, within a district,
    over kinds, so even ``--devices 8`` covers every district and the flood
    scenario's Vị Thanh water level station comes first.
    """
    usable = [d for d in devices if d.kind in SIMULATED_KINDS]
    skipped = sorted({d.kind for d in devices if d.kind not in SIMULATED_KINDS})
    if skipped:
        log.warning("simulator: no model for device kinds %s; those devices are left out",
                    ", ".join(skipped))
    if count is None:
        return usable
    if count <= len(usable):
        return _spread(usable)[:count]
    return usable + synthesize(count - len(usable), taken=[d.id for d in devices])


def _spread(devices: Sequence[Device]) -> list[Device]:
    by_district: dict[str, dict[str, list[Device]]] = defaultdict(lambda: defaultdict(list))
    for d in devices:
        by_district[d.district or ""][d.kind].append(d)
    columns = [_round_robin(list(kinds.values())) for kinds in by_district.values()]
    return _round_robin(columns)


def _round_robin(groups: list[list[Device]]) -> list[Device]:
    out: list[Device] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


def synthesize(count: int, taken: Sequence[str] = ()) -> list[Device]:
    """``count`` extra devices spread over the districts, numbered after ids already ``taken``.

    Deterministic (no seed): the same count gives the same ids, names and places.
    """
    next_number: dict[str, int] = defaultdict(lambda: 1)
    for dev_id in taken:
        m = _ID_NUMBER.match(dev_id)
        if m:
            next_number[m.group(1)] = max(next_number[m.group(1)], int(m.group(2)) + 1)
    out: list[Device] = []
    for k in range(count):
        district = DISTRICTS[k % len(DISTRICTS)]
        kind = _SYNTH_KINDS[(k // len(DISTRICTS)) % len(_SYNTH_KINDS)]
        prefix = f"hg-{district.code}-{KIND_CODES[kind]}-"
        number = next_number[prefix]
        next_number[prefix] = number + 1
        dev_id = f"{prefix}{number:03d}"
        h = stable_hash(dev_id)
        tags = (_SYNTH_CAMERA_TAGS[(h >> 3) % len(_SYNTH_CAMERA_TAGS)] if kind == "camera"
                else _SYNTH_TAGS[kind])
        out.append(Device(
            id=dev_id,
            name=f"{_SYNTH_NAMES[kind]} mô phỏng {number} – {district.name}",
            kind=kind,
            district=district.name,
            ward=None,
            lat=round(district.lat + ((h & 0xFFFF) / 0xFFFF - 0.5) * 0.06, 4),
            lon=round(district.lon + (((h >> 16) & 0xFFFF) / 0xFFFF - 0.5) * 0.06, 4),
            interval_s=60.0 if kind == "camera" else 300.0,
            tags=(*tags, "simulated"),
        ))
    return out
