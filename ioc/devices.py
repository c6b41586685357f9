"""The device registry file (``config/devices.yaml``): loading and line-precise validation.

Operators edit this file by hand, so every problem is reported at once, each
on its own ``file:line: message`` line, instead of stopping at the first one.
Pure: no database, no network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ioc.durations import parse_duration

ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_FIELDS = ("id", "name", "kind", "district", "ward", "location", "interval", "tags")
_REQUIRED = ("id", "kind")


@dataclass(frozen=True, slots=True)
class Device:
    """One registered sensor or camera; ``interval_s`` is the expected reporting interval."""

    id: str
    name: str
    kind: str
    district: str | None = None
    ward: str | None = None
    lat: float | None = None
    lon: float | None = None
    interval_s: float | None = None
    tags: tuple[str, ...] = ()


class DevicesFileError(ValueError):
    """The devices file is invalid; ``str()`` has one ``file:line: message`` line per problem."""

    def __init__(self, name: str, problems: list[tuple[int, str]]) -> None:
        self.name = name
        self.problems = sorted(problems, key=lambda p: p[0])
        super().__init__("\n".join(f"{name}:{line}: {msg}" for line, msg in self.problems))


def load_devices_file(path: str | Path) -> list[Device]:
    """Devices in the YAML file at ``path``, in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DevicesFileError(str(path), [(0, f"cannot read file: {e}")]) from e
    return load_devices_text(text, str(path))


def load_devices_text(text: str, name: str = "<devices>") -> list[Device]:
    """Devices in YAML ``text``; ``name`` is the file name used in error messages."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else 0
        raise DevicesFileError(name, [(line, f"YAML syntax error: {e.problem or e}")]) from None
    finally:
        loader.dispose()
    return _Validator(loader, name).run(root)


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Validator:
    """Walks the composed YAML nodes so every problem keeps the line it came from."""

    def __init__(self, loader: yaml.SafeLoader, name: str) -> None:
        self.loader = loader
        self.name = name
        self.problems: list[tuple[int, str]] = []

    def error(self, node: yaml.Node, msg: str) -> None:
        self.problems.append((_line(node), msg))

    def value(self, node: yaml.Node) -> Any:
        """The Python value of ``node``; a tag YAML cannot build is reported and gives None."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            self.error(node, f"cannot read value: {getattr(e, 'problem', None) or e}")
            return None

    def mapping(self, node: yaml.MappingNode, what: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        """Keys to (key node, value node); reports duplicate and non-string keys."""
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            key = self.value(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.error(key_node, f"{what}: keys must be strings")
            elif key in out:
                self.error(key_node, f"{what}: duplicate key {key!r}")
            else:
                out[key] = (key_node, value_node)
        return out

    def run(self, root: yaml.Node | None) -> list[Device]:
        if root is None:
            raise DevicesFileError(self.name, [(1, "empty file: expected 'devices:' with a list")])
        if not isinstance(root, yaml.MappingNode):
            raise DevicesFileError(self.name, [(_line(root), "expected a mapping with 'devices:'")])
        top = self.mapping(root, "top level")
        for key, (key_node, _) in top.items():
            if key != "devices":
                self.error(key_node, f"unknown top-level key {key!r} (expected 'devices')")
        devices: list[Device] = []
        if "devices" not in top:
            self.error(root, "missing 'devices:' list")
        else:
            seq = top["devices"][1]
            if isinstance(seq, yaml.ScalarNode) and self.value(seq) is None:
                pass  # "devices:" with nothing under it: an empty registry
            elif not isinstance(seq, yaml.SequenceNode):
                self.error(seq, "'devices' must be a list")
            else:
                first_seen: dict[str, int] = {}
                for item in seq.value:
                    device = self.device(item)
                    if device is None:
                        continue
                    if device.id in first_seen:
                        self.error(
                            item, f"duplicate device id {device.id!r} (first at line "
                            f"{first_seen[device.id]})"
                        )
                        continue
                    first_seen[device.id] = _line(item)
                    devices.append(device)
        if self.problems:
            raise DevicesFileError(self.name, self.problems)
        return devices

    def device(self, node: yaml.Node) -> Device | None:
        """One validated device, or None after reporting its problems."""
        if not isinstance(node, yaml.MappingNode):
            self.error(node, "each device must be a mapping with id, kind, …")
            return None
        before = len(self.problems)
        fields = self.mapping(node, "device")
        label = "device"
        for key, (key_node, _) in fields.items():
            if key not in _FIELDS:
                self.error(key_node, f"unknown field {key!r} (allowed: {', '.join(_FIELDS)})")
        for key in _REQUIRED:
            if key not in fields:
                self.error(node, f"device is missing required field {key!r}")

        dev_id = self.string(fields, "id")
        if dev_id is not None:
            label = f"device {dev_id!r}"
            if not ID_PATTERN.fullmatch(dev_id):
                self.error(
                    fields["id"][1],
                    f"{label}: id must be 1–128 characters from A-Z a-z 0-9 . _ : -",
                )
        kind = self.string(fields, "kind", label)
        name = self.string(fields, "name", label)
        district = self.string(fields, "district", label)
        ward = self.string(fields, "ward", label)
        lat, lon = self.location(fields, label)
        interval = self.interval(fields, label)
        tags = self.tags(fields, label)
        if len(self.problems) > before or dev_id is None or kind is None:
            return None
        return Device(
            id=dev_id,
            name=name or dev_id,
            kind=kind,
            district=district,
            ward=ward,
            lat=lat,
            lon=lon,
            interval_s=interval,
            tags=tags,
        )

    def string(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], key: str, label: str = "device"
    ) -> str | None:
        if key not in fields:
            return None
        node = fields[key][1]
        value = self.value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not value.strip():
            self.error(node, f"{label}: {key} must be a non-empty string")
            return None
        return value.strip()

    def location(
        self, fields: dict[str, tuple[yaml.Node, yaml.Node]], label: str
    ) -> tuple[float | None, float | None]:
        if "location" not in fields:
            return None, None
        node = fields["location"][1]
        value = self.value(node)
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            self.error(node, f"{label}: location must be [lat, lon] in decimal degrees")
            return None, None
        lat, lon = float(value[0]), float(value[1])
        ok = True
        if not -90.0 <= lat <= 90.0:
            self.error(node, f"{label}: latitude {lat} is outside -90..90")
            ok = False
        if not -180.0 <= lon <= 180.0:
            self.error(node, f"{label}: longitude {lon} is outside -180..180")
            ok = False
        return (lat, lon) if ok else (None, None)

    def interval(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], label: str) -> float | None:
        if "interval" not in fields:
            return None
        node = fields["interval"][1]
        value = self.value(node)
        try:
            if not isinstance(value, str | int | float):
                raise ValueError("expected a duration such as 30s, 5m or 1h")
            seconds = parse_duration(value)
            if seconds <= 0:
                raise ValueError("must be greater than zero")
        except ValueError as e:
            self.error(node, f"{label}: interval: {e}")
            return None
        return seconds

    def tags(self, fields: dict[str, tuple[yaml.Node, yaml.Node]], label: str) -> tuple[str, ...]:
        if "tags" not in fields:
            return ()
        node = fields["tags"][1]
        value = self.value(node)
        if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
            self.error(node, f"{label}: tags must be a list of non-empty strings")
            return ()
        return tuple(value)
