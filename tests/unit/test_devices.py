"""The device registry file: the shipped file loads, and every problem is reported at its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ioc.devices import Device, DevicesFileError, load_devices_file, load_devices_text

ROOT = Path(__file__).resolve().parents[2]
DISTRICTS = {"Vị Thanh", "Ngã Bảy", "Long Mỹ", "Huyện Long Mỹ", "Vị Thủy", "Châu Thành",
             "Châu Thành A", "Phụng Hiệp"}
KINDS = {"water_level", "rainfall", "salinity", "pm25", "traffic_count", "camera"}

GOOD = """\
devices:
  - id: hg-vt-wl-001
    name: "Trạm Cầu Cái Nhúc"
    kind: water_level
    district: "Vị Thanh"
    ward: "Phường 1"
    location: [9.7842, 105.4701]
    interval: 5m
    tags: [river, tide]
  - id: hg-vt-cam-001
    kind: camera
"""


def test_shipped_registry_loads_and_is_plausible() -> None:
    devices = load_devices_file(ROOT / "config" / "devices.yaml")
    assert 60 <= len(devices) <= 120
    assert {d.district for d in devices} == DISTRICTS
    assert {d.kind for d in devices} == KINDS
    codes = {"water_level": "wl", "rainfall": "rf", "salinity": "sal", "pm25": "pm",
             "traffic_count": "tc", "camera": "cam"}
    for d in devices:
        assert re.fullmatch(rf"hg-(vt|nb|lm|hlm|vth|ct|cta|ph)-{codes[d.kind]}-\d{{3}}", d.id)
        assert d.lat is not None and 9.6 <= d.lat <= 9.95
        assert d.lon is not None and 105.35 <= d.lon <= 105.85
        assert d.interval_s and d.interval_s > 0
        assert d.name and d.ward and d.tags


def test_valid_text_gives_devices_with_defaults() -> None:
    first, second = load_devices_text(GOOD, "d.yaml")
    assert first == Device(
        id="hg-vt-wl-001", name="Trạm Cầu Cái Nhúc", kind="water_level", district="Vị Thanh",
        ward="Phường 1", lat=9.7842, lon=105.4701, interval_s=300.0, tags=("river", "tide"),
    )
    assert second == Device(id="hg-vt-cam-001", name="hg-vt-cam-001", kind="camera")


def _errors(text: str) -> list[str]:
    with pytest.raises(DevicesFileError) as info:
        load_devices_text(text, "d.yaml")
    return str(info.value).splitlines()


@pytest.mark.parametrize(
    ("line", "text", "needle"),
    [
        (3, "devices:\n  - kind: camera\n    id: 'bad id!'\n", "id must be"),
        (4, "devices:\n  - id: a\n    kind: x\n    location: [91.0, 105.0]\n", "latitude"),
        (4, "devices:\n  - id: a\n    kind: x\n    location: [9.7, 190]\n", "longitude"),
        (4, "devices:\n  - id: a\n    kind: x\n    location: 9.7\n", "[lat, lon]"),
        (4, "devices:\n  - id: a\n    kind: x\n    interval: 5 minutes\n", "interval"),
        (4, "devices:\n  - id: a\n    kind: x\n    interval: 0s\n", "greater than zero"),
        (4, "devices:\n  - id: a\n    kind: x\n    colour: red\n", "unknown field 'colour'"),
        (2, "devices:\n  - id: a\n    name: n\n", "missing required field 'kind'"),
        (4, "devices:\n  - id: a\n    kind: x\n    tags: river\n", "tags"),
        (4, "devices:\n  - id: a\n    kind: x\n    kind: y\n", "duplicate key 'kind'"),
        (1, "device:\n  - id: a\n", "unknown top-level key 'device'"),
        (2, "devices:\n  - [a, b]\n", "must be a mapping"),
        (2, "devices:\n\t- id: a\n", "YAML syntax error"),
    ],
)
def test_each_problem_is_reported_at_its_line(line: int, text: str, needle: str) -> None:
    errors = _errors(text)
    assert any(e.startswith(f"d.yaml:{line}: ") and needle in e for e in errors), errors


def test_duplicate_id_names_both_lines() -> None:
    text = "devices:\n  - id: a\n    kind: x\n  - id: b\n    kind: x\n  - id: a\n    kind: y\n"
    assert _errors(text) == ["d.yaml:6: duplicate device id 'a' (first at line 2)"]


def test_all_problems_are_reported_at_once_in_line_order() -> None:
    text = (
        "devices:\n"
        "  - id: ok-1\n"
        "    kind: camera\n"
        "    interval: soon\n"
        "  - id: 'x y'\n"
        "    kind: camera\n"
        "    location: [9.7, 200]\n"
    )
    errors = _errors(text)
    assert [e.split(":")[1] for e in errors] == ["4", "5", "7"]


def test_missing_file_is_a_devices_file_error(tmp_path: Path) -> None:
    with pytest.raises(DevicesFileError, match="cannot read file"):
        load_devices_file(tmp_path / "nope.yaml")


def test_empty_devices_list_is_allowed() -> None:
    assert load_devices_text("devices:\n", "d.yaml") == []
    assert load_devices_text("devices: []\n", "d.yaml") == []
