"""Payload forms (single event, batch array, multi-reading) and fast JSON encoding.

Encoding is the expensive part of simulating at benchmark rates, so the static
parts of every payload (device id, kind, unit, attrs of sensors) are JSON-encoded
once per device and each event only formats its id, timestamp and value.
Event ids are hashes of (run, device, kind, round): unique per event, and the
same reading re-generated with the same seed and start gets the same id, so a
replayed run deduplicates instead of doubling the data.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import msgspec
import numpy as np

from ioc.devices import Device
from ioc.simulator.fleet import SIMULATED_KINDS, UNITS
from ioc.simulator.model import (
    CAMERA,
    DETECTIONS,
    KIND_INDEX,
    LOCAL_OFFSET_S,
    RAINFALL,
    SALINITY,
    WATER_LEVEL,
    Model,
    Readings,
    _mix,
)

FORMS = ("single", "batch", "multi")
#: In the multi-reading form a station also sends what it measures alongside its main kind.
COMPANIONS: dict[int, tuple[int, ...]] = {WATER_LEVEL: (RAINFALL,), SALINITY: (WATER_LEVEL,)}
SNAPSHOT_BASE = "https://camera.ioc.example/snapshots/"
_LOCAL_MS = np.int64(LOCAL_OFFSET_S * 1000)


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def events_per_round(kinds: Sequence[str], form: str) -> int:
    """Events in one round of the fleet (every device reporting once) in payload ``form``."""
    if form != "multi":
        return len(kinds)
    return sum(1 + len(COMPANIONS.get(KIND_INDEX[k], ())) for k in kinds)


class Layout:
    """Which (device, kind, round) the i-th event is, and which message carries it.

    The stream is a repetition of one block: ``rounds`` rounds of every device,
    cut into messages. single: one event per message; multi: a sensor's main and
    companion readings at one time share a message (cameras stay single); batch:
    ``batch_size`` consecutive readings of one device share a message (an MQTT
    topic and a Kafka key name one device, so a batch never mixes devices).
    """

    def __init__(self, main_kind: np.ndarray, form: str = "single", batch_size: int = 50) -> None:
        if form not in FORMS:
            raise ValueError(f"unknown payload form {form!r} (known: {', '.join(FORMS)})")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.form = form
        self.rounds = batch_size if form == "batch" else 1
        dev: list[int] = []
        kind: list[int] = []
        rnd: list[int] = []
        msg: list[int] = []
        for i, k in enumerate(main_kind.tolist()):
            kinds = (k, *COMPANIONS.get(k, ())) if form == "multi" else (k,)
            for j in range(self.rounds):
                for kk in kinds:
                    dev.append(i)
                    kind.append(kk)
                    rnd.append(j)
                    msg.append(i)  # every form: one message per device per block
        self.dev = np.array(dev, dtype=np.int64)
        self.kind = np.array(kind, dtype=np.int64)
        self.rnd = np.array(rnd, dtype=np.int64)
        self.msg = np.array(msg, dtype=np.int64)
        self.length = len(dev)
        self.messages = len(main_kind)
        starts = np.flatnonzero(np.diff(self.msg, prepend=-1) != 0)
        self._starts = np.append(starts, self.length)

    def locate(self, first: int, n: int) -> tuple[np.ndarray, ...]:
        """(device, kind, round, global message number) of events first .. first+n-1."""
        i = np.arange(first, first + n, dtype=np.int64)
        block, pos = np.divmod(i, self.length)
        return (self.dev[pos], self.kind[pos], block * self.rounds + self.rnd[pos],
                block * self.messages + self.msg[pos])

    def align(self, index: int) -> int:
        """The first message boundary at or after event ``index``."""
        block, pos = divmod(index, self.length)
        return block * self.length + int(self._starts[np.searchsorted(self._starts, pos)])


class Encoder:
    """Turns a model's readings into ``(device_id, payload bytes)`` per message."""

    def __init__(self, model: Model, layout: Layout, *, epoch_ms: bool = False,
                 scenario_key: int = 0) -> None:
        self.model = model
        self.layout = layout
        self.epoch_ms = epoch_ms
        devices: Sequence[Device] = model.devices
        self.ids = [d.id for d in devices]
        self.id_json = [_json(d.id) for d in devices]
        self.id_objects = np.array(self.ids, dtype=object)
        # Per device and kind (at device * len(SIMULATED_KINDS) + kind) the text between event
        # id and ts, and the text after the value.
        self.mid: list[str] = []
        self.tail: list[str] = []
        for i, d in enumerate(devices):
            for k, kind in enumerate(SIMULATED_KINDS):
                attrs: dict[str, str] = {"station": d.name}
                if k == RAINFALL:
                    attrs["window"] = "1h"
                unit = _json(UNITS.get(kind))
                self.mid.append(f'","device_id":{self.id_json[i]},"kind":"{kind}","ts":')
                self.tail.append(f',"unit":{unit},"attrs":{_json(attrs)}}}')
        self.kind_json = [_json(k) for k in SIMULATED_KINDS]
        run = (model.seed * 1_000_003 + model.start_ms) * 1_000_003 + round(model.step_s * 1e6)
        run = run * 31 + scenario_key
        self._run = _mix(np.array([run & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]

    def event_ids(self, r: Readings) -> list[str]:
        """UUID-formatted (version 8) ids from (run, device, kind, round)."""
        key = self.model.device_key[r.device] ^ (r.kind.astype(np.uint64) << np.uint64(56))
        h1 = _mix(key ^ _mix(r.round.astype(np.uint64) ^ self._run))
        h2 = _mix(h1 ^ self._run)
        h1 = (h1 & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x8000)
        h2 = (h2 & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)
        raw = np.stack([h1, h2], axis=1).astype(">u8").view(np.uint8).reshape(-1, 16)
        hexd = np.frombuffer(raw.tobytes().hex().encode(), dtype=np.uint8).reshape(-1, 32)
        out = np.full((len(hexd), 36), ord("-"), dtype=np.uint8)
        for src, dst, width in ((0, 0, 8), (8, 9, 4), (12, 14, 4), (16, 19, 4), (20, 24, 12)):
            out[:, dst:dst + width] = hexd[:, src:src + width]
        text = out.tobytes().decode("ascii")
        return [text[i:i + 36] for i in range(0, len(text), 36)]

    def timestamps(self, ts_ms: np.ndarray) -> list[str]:
        """JSON text of each ts: RFC 3339 in local time (+07:00), or epoch ms."""
        if self.epoch_ms:
            return ts_ms.astype(str).tolist()
        local = (ts_ms + _LOCAL_MS).astype("datetime64[ms]")
        return [f'"{s}+07:00"' for s in np.datetime_as_string(local, unit="ms").tolist()]

    def encode(self, r: Readings, msg: np.ndarray) -> list[tuple[str, bytes]]:
        """One ``(device_id, payload)`` per message in ``msg`` (message number of each event)."""
        eids = self.event_ids(r)
        ts = self.timestamps(r.ts_ms)
        dev = r.device.tolist()
        kind = r.kind.tolist()
        value = r.value.tolist()
        multi = self.layout.form == "multi"
        mid, tail, kind_json = self.mid, self.tail, self.kind_json
        code = (r.device * len(SIMULATED_KINDS) + r.kind).tolist()
        cams = np.flatnonzero(r.kind == CAMERA)
        sensors = np.flatnonzero(r.kind != CAMERA).tolist() if len(cams) else range(len(dev))
        pieces: list[str] = [""] * len(dev)
        if multi:
            for j in sensors:
                pieces[j] = f"{kind_json[kind[j]]}:{value[j]}"
        else:
            for j in sensors:
                c = code[j]
                pieces[j] = f'{{"event_id":"{eids[j]}{mid[c]}{ts[j]},"value":{value[j]}{tail[c]}'
        if len(cams):
            self._cameras(r, cams, eids, ts, pieces)
        if self.layout.form == "single":
            # One encode and a C-level split beat a million str.encode calls; JSON text never
            # holds a raw newline.
            payloads = "\n".join(pieces).encode().split(b"\n")
            return list(zip(self.id_objects[r.device].tolist(), payloads, strict=True))
        bounds = np.flatnonzero(np.diff(msg, prepend=msg[0] - 1, append=msg[-1] + 1)).tolist()
        out: list[tuple[str, bytes]] = []
        for a, b in itertools.pairwise(bounds):
            d = dev[a]
            if multi and kind[a] == CAMERA:
                text = pieces[a]  # detections carry attrs, so cameras send single events
            elif multi:
                text = (f'{{"device_id":{self.id_json[d]},"ts":{ts[a]},"values":{{'
                        f'{",".join(pieces[a:b])}}}}}')
            else:
                text = f"[{','.join(pieces[a:b])}]"
            out.append((self.ids[d], text.encode()))
        return out

    def _cameras(self, r: Readings, idx: np.ndarray, eids: list[str], ts: list[str],
                 pieces: list[str]) -> None:
        """Detection events (kind camera.<label>, value = confidence) into ``pieces`` at ``idx``."""
        columns = zip(
            idx.tolist(), r.device[idx].tolist(), r.detection[idx].tolist(),
            r.value[idx].tolist(), r.bbox[idx].tolist(), r.people[idx].tolist(),
            r.ts_ms[idx].tolist(), strict=True,
        )
        for j, d, det, conf, (x, y, w, h), people, ts_ms in columns:
            label = DETECTIONS[det]
            extra = f',"people":{people}' if label == "crowd" else ""
            pieces[j] = (
                f'{{"event_id":"{eids[j]}","device_id":{self.id_json[d]},"kind":"camera.{label}",'
                f'"ts":{ts[j]},"value":{conf},"attrs":{{"label":"{label}",'
                f'"bbox":[{x},{y},{w},{h}],'
                f'"snapshot_url":"{SNAPSHOT_BASE}{self.ids[d]}/{ts_ms}.jpg"{extra}}}}}'
            )
