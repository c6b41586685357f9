"""Decoder throughput: events/s for the payload shapes sources actually send.

Cases: 200k single-event MQTT messages with RFC 3339 ts (+07:00), the same with epoch-ms ts,
and 2k HTTP array messages of 100 events each. The mix: 4 of 5 events are sensor readings
from 500 Hậu Giang stations with the station's attrs, 1 of 5 a camera detection with its own
bbox attrs; no event carries an event_id, so deriving it is always included. The ceiling --
msgspec's typed decode of the same payloads, no checks, no columns -- is measured in the same
run. Rates are events per CPU-second of this process (the machine is shared), median of
--repeat runs; wall-clock rates are recorded too.

    .venv/bin/python bench/decode.py [--repeat 5] [--plain]

Writes bench/results/decode.json; with ``--plain`` the accelerators are off (as with
IOC_ACCELERATE=false: message by message, the plain screen) and it writes decode-plain.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec

from ioc import fast
from ioc.ingest.decode import _MESSAGE_DECODER, DecodeLimits, decode
from ioc.ingest.pipeline import DECODE_GROUP_MESSAGES
from ioc.model import RawMessage

START = datetime(2026, 11, 23, 7, 0, tzinfo=timezone(timedelta(hours=7)))
NOW_US = int((START + timedelta(days=4)).timestamp() * 1_000_000)
DISTRICTS = ("vt", "nb", "lm", "vth", "ct", "cta", "ph")  # Vị Thanh, Ngã Bảy, Long Mỹ, ...
KINDS = (("water_level", "m"), ("rainfall", "mm"), ("salinity", "g/l"), ("pm25", "µg/m³"))
CAMERA_KINDS = ("camera.fire", "camera.smoke", "camera.crowd", "camera.flooding")
STATIONS = ("Cầu Cái Nhúc", "Chợ Ngã Bảy", "Kênh Xà No", "Thị trấn Long Mỹ", "Cầu Phụng Hiệp")


def _event(i: int, iso: bool) -> dict[str, object]:
    ts = START + timedelta(seconds=i)
    district = DISTRICTS[i % len(DISTRICTS)]
    body: dict[str, object] = {"ts": ts.isoformat() if iso else int(ts.timestamp() * 1000)}
    if i % 5 == 4:
        body |= {
            "device_id": f"hg-{district}-cam-{i % 40:02d}",
            "kind": CAMERA_KINDS[i % len(CAMERA_KINDS)],
            "value": round((i % 100) / 100, 2),
            "attrs": {
                "label": "smoke",
                "bbox": [i % 640, i % 480, 32 + i % 64, 32 + i % 48],
                "snapshot_url": f"https://ioc.haugiang.gov.vn/snap/{district}/{i}.jpg",
            },
        }
    else:
        kind, unit = KINDS[i % len(KINDS)]
        body |= {
            "device_id": f"hg-{district}-{kind[:2]}-{i % 500:03d}",
            "kind": kind,
            "value": round(1.0 + (i % 997) / 100, 2),
            "unit": unit,
            "attrs": {"station": STATIONS[i % 500 % len(STATIONS)], "district_code": district},
        }
    return body


def single_messages(n: int, iso: bool) -> list[RawMessage]:
    enc = msgspec.json.encode
    out = []
    for i in range(n):
        ev = _event(i, iso)
        out.append(RawMessage(enc(ev), "mqtt", topic=f"ioc/v1/events/{ev['device_id']}"))
    return out


def array_messages(n: int, per: int) -> list[RawMessage]:
    enc = msgspec.json.encode
    return [RawMessage(enc([_event(m * per + k, True) for k in range(per)]), "http") for m in range(n)]


def _median_rates(run: Callable[[], int], repeat: int) -> tuple[float, float, int]:
    """Median events per CPU-second and per wall-second over ``repeat`` runs."""
    cpu, wall = [], []
    events = 0
    for _ in range(repeat):
        c0, w0 = time.process_time(), time.perf_counter()
        events = run()
        cpu.append(events / (time.process_time() - c0))
        wall.append(events / (time.perf_counter() - w0))
    return statistics.median(cpu), statistics.median(wall), events


def measure(messages: list[RawMessage], repeat: int) -> dict[str, float | int]:
    limits = DecodeLimits()

    def full() -> int:
        # In groups, as the pipeline decodes a batch (ioc/ingest/pipeline.py).
        n = 0
        for i in range(0, len(messages), DECODE_GROUP_MESSAGES):
            result = decode(messages[i:i + DECODE_GROUP_MESSAGES], limits, now_us=NOW_US)
            assert not result.dead, result.dead[:3]
            n += len(result.events)
        return n

    def ceiling() -> int:
        dec = _MESSAGE_DECODER.decode
        n = 0
        for m in messages:
            top = dec(m.payload)
            n += len(top) if type(top) is list else 1
        return n

    rate, wall, events = _median_rates(full, repeat)
    bare, _, _ = _median_rates(ceiling, repeat)
    return {
        "messages": len(messages),
        "events": events,
        "events_per_s": round(rate),
        "events_per_wall_s": round(wall),
        "ceiling_msgspec_typed_decode_events_per_s": round(bare),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--plain", action="store_true",
                        help="the accelerators off: their plain references (IOC_ACCELERATE=false)")
    args = parser.parse_args()
    fast.set_enabled(not args.plain)
    cases = {
        "single_iso_200k": single_messages(200_000, iso=True),
        "single_epoch_ms_200k": single_messages(200_000, iso=False),
        "array_2k_x100_iso": array_messages(2_000, 100),
    }
    results = {}
    for name, messages in cases.items():
        results[name] = measure(messages, args.repeat)
        r = results[name]
        print(
            f"{name:24s} {r['events_per_s']:>10,} events/s   "
            f"(ceiling, typed msgspec decode alone: {r['ceiling_msgspec_typed_decode_events_per_s']:,})"
        )
    out = {
        "benchmark": "decode",
        "at": datetime.now(UTC).isoformat(),
        "python": platform.python_version(),
        "msgspec": msgspec.__version__,
        "cpus": os.cpu_count(),
        "repeat": args.repeat,
        "accelerate": not args.plain,
        "statistic": "median events per CPU-second",
        "load_average_1m": os.getloadavg()[0],
        "results": results,
    }
    path = Path(__file__).parent / "results" / ("decode-plain.json" if args.plain else "decode.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
