"""``ioc simulate``: argument parsing and the paced publish loop.

Simulated time is tied to the event index, not the wall clock: each device
reports every ``step`` simulated seconds, with ``step`` chosen so that at the
target rate simulated time runs ``--speed`` times faster than real time. The
same seed and start therefore give the same stream however fast the broker
accepts it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ioc.devices import Device, DevicesFileError, load_devices_file
from ioc.durations import parse_duration
from ioc.simulator.fleet import build_fleet, synthesize
from ioc.simulator.model import FLOOD_END_S, SCENARIOS
from ioc.simulator.pacing import TokenBucket
from ioc.simulator.payloads import FORMS, events_per_round
from ioc.simulator.publish import (
    KafkaPublisher,
    MqttPublisher,
    Publisher,
    PublishError,
    StdoutPublisher,
)
from ioc.simulator.stream import EventStream

log = logging.getLogger(__name__)

DEFAULT_DEVICES_FILE = "config/devices.yaml"
FLOOD_SPEED = 60.0
UNLIMITED_NOMINAL_RATE = 10_000.0  # how fast simulated time runs with --rate 0
PROGRESS_EVERY_S = 5.0
ACK_TIMEOUT_S = 30.0
_ICT = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")


class UsageError(Exception):
    """Bad arguments or configuration; the message is one line for the user."""


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number greater than zero")
    return v


def _rate(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else _positive_float(text)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return v


def _duration(text: str) -> float:
    try:
        v = parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if v <= 0:
        raise argparse.ArgumentTypeError("must be greater than zero")
    return v


def _timestamp(text: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an RFC 3339 timestamp: {text!r} (e.g. 2026-03-15T06:00:00+07:00)") from None
    if ts.tzinfo is None:
        raise argparse.ArgumentTypeError("timestamp needs an offset, e.g. +07:00")
    return ts


def add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ioc simulate``."""
    target = parser.add_argument_group("target (default: IOC_MQTT_URL, else IOC_KAFKA_BOOTSTRAP)")
    target.add_argument("--mqtt", metavar="URL", help="publish to this broker, mqtt://host:1883")
    target.add_argument("--kafka", metavar="HOST:PORT[,…]", help="publish to these Kafka brokers")
    target.add_argument("--topic", help="Kafka topic (default: IOC_KAFKA_TOPIC or ioc.events); "
                        "MQTT always uses ioc/v1/events/{device_id}")
    target.add_argument("--stdout", action="store_true",
                        help="write payloads to stdout, one per line, instead of publishing")

    what = parser.add_argument_group("what to simulate")
    what.add_argument("--devices-file", metavar="PATH",
                      help=f"device registry (default: IOC_DEVICES_FILE or {DEFAULT_DEVICES_FILE})")
    what.add_argument("--devices", type=_positive_int, metavar="N",
                      help="simulate N devices: a spread-out subset of the file, or the file plus "
                      "synthesized devices in Hậu Giang districts (default: the whole file)")
    what.add_argument("--scenario", choices=SCENARIOS,
                      help="flood: heavy rain and Vị Thanh water above 1.8 m for over an hour "
                      f"of simulated time (plays in ~3 minutes at the default speed "
                      f"{FLOOD_SPEED:g} for this scenario)")
    what.add_argument("--seed", type=int, help="random seed (default: random, logged)")
    what.add_argument("--start", type=_timestamp, metavar="RFC3339",
                      help="simulated start time (default: now, or early enough that "
                      "timestamps do not run ahead of the clock when --speed > 1)")
    what.add_argument("--speed", type=_positive_float,
                      help="simulated seconds per real second (default 1; "
                      f"{FLOOD_SPEED:g} with --scenario flood)")

    how = parser.add_argument_group("how much and how")
    how.add_argument("--rate", type=_rate, default=100.0, metavar="N",
                     help="events per second (default 100; 0 = as fast as possible)")
    how.add_argument("--count", type=_positive_int, metavar="N", help="stop after N events")
    how.add_argument("--duration", type=_duration, metavar="D",
                     help="stop after this long, e.g. 90s, 10m")
    how.add_argument("--form", choices=FORMS, default="single",
                     help="single events, batch arrays of one device's readings, or the "
                     "multi-reading form (default single)")
    how.add_argument("--batch-size", type=_positive_int, default=50, metavar="N",
                     help="events per batch array with --form batch (default 50)")
    how.add_argument("--epoch-ms", action="store_true",
                     help="timestamps as epoch milliseconds instead of RFC 3339 (+07:00)")
    how.add_argument("--client-id", help="MQTT client id (default ioc-simulator-<host>); the "
                     "session is persistent, so keep it stable")
    how.add_argument("--inflight", type=_positive_int, default=100, metavar="N",
                     help="MQTT: unacknowledged QoS 1 messages at most (default 100; raise it "
                     "for a high-latency broker)")
    how.add_argument("--acks", choices=("1", "all"), default="1", help="Kafka acks (default 1)")
    how.add_argument("--linger-ms", type=int, default=10, metavar="MS",
                     help="Kafka producer linger (default 10)")


def run_simulate(args: argparse.Namespace) -> int:
    """Run the simulator; 0 when every event was acknowledged, 1 on delivery failure, 2 on usage."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        stream, publisher, pace = _prepare(args)
    except UsageError as e:
        print(f"ioc simulate: {e}", file=sys.stderr)
        return 2
    try:
        publisher.start()
    except PublishError as e:
        print(f"ioc simulate: {e}", file=sys.stderr)
        return 1
    return _publish_loop(stream, publisher, pace)


class _Pace:
    """What the loop needs beyond the stream: rate, limits, and when to stop."""

    def __init__(self, rate: float, count: int | None, duration: float | None) -> None:
        self.rate = rate
        self.count = count
        self.duration = duration


def _prepare(args: argparse.Namespace) -> tuple[EventStream, Publisher, _Pace]:
    if args.count is not None and args.duration is not None:
        raise UsageError("give --count or --duration, not both")
    fleet = build_fleet(_load_registry(args.devices_file), args.devices)
    if not fleet:
        raise UsageError("no devices to simulate")
    speed = args.speed or (FLOOD_SPEED if args.scenario == "flood" else 1.0)
    rate = args.rate
    per_round = events_per_round([d.kind for d in fleet], args.form)
    step_s = per_round / (rate or UNLIMITED_NOMINAL_RATE) * speed
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    now = time.time()
    if args.start is not None:
        start = args.start.timestamp()
    elif speed > 1:
        # Start in the past so the run ends near "now": the service rejects events that are
        # too far in the future.
        if args.duration:
            planned = args.duration
        elif args.count and rate:
            planned = args.count / rate
        elif args.scenario == "flood":
            planned = FLOOD_END_S / speed
        else:
            planned = 600.0
        start = now - planned * (speed - 1)
    else:
        start = now
    stream = EventStream(fleet, start_ms=round(start * 1000), step_s=step_s, seed=seed,
                         scenario=args.scenario, form=args.form, batch_size=args.batch_size,
                         epoch_ms=args.epoch_ms)
    publisher = _publisher(args)
    log.info(
        "simulate: %d devices → %s, %s events/s, form %s, seed %d, speed %gx (each device every "
        "%.3gs simulated), start %s%s",
        len(fleet), publisher.target, f"{rate:g}" if rate else "unlimited", args.form, seed,
        speed, step_s, _iso(round(start * 1000)),
        f", scenario {args.scenario}" if args.scenario else "",
    )
    return stream, publisher, _Pace(rate, args.count, args.duration)


def _load_registry(path_arg: str | None) -> list[Device]:
    path = path_arg or os.environ.get("IOC_DEVICES_FILE") or DEFAULT_DEVICES_FILE
    if not Path(path).exists():
        if path_arg or os.environ.get("IOC_DEVICES_FILE"):
            raise UsageError(f"devices file not found: {path}")
        log.warning("simulate: no %s here; simulating 100 synthesized devices",
                    DEFAULT_DEVICES_FILE)
        return synthesize(100)
    try:
        return load_devices_file(path)
    except DevicesFileError as e:
        raise UsageError(f"invalid devices file:\n{e}") from None


def _publisher(args: argparse.Namespace) -> Publisher:
    if args.stdout:
        return StdoutPublisher()
    mqtt_url = args.mqtt or ("" if args.kafka else os.environ.get("IOC_MQTT_URL", ""))
    if mqtt_url:
        client_id = args.client_id or f"ioc-simulator-{os.uname().nodename}"
        try:
            return MqttPublisher(mqtt_url, client_id=client_id, inflight=args.inflight)
        except PublishError as e:
            raise UsageError(str(e)) from None
    bootstrap = args.kafka or os.environ.get("IOC_KAFKA_BOOTSTRAP", "")
    if bootstrap:
        topic = args.topic or os.environ.get("IOC_KAFKA_TOPIC") or "ioc.events"
        acks: int | str = "all" if args.acks == "all" else 1
        return KafkaPublisher(bootstrap, topic, acks=acks, linger_ms=args.linger_ms)
    raise UsageError("no target: give --mqtt URL or --kafka HOST:PORT "
                     "(or set IOC_MQTT_URL / IOC_KAFKA_BOOTSTRAP)")


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, _ICT).isoformat(timespec="seconds")


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    """SIGTERM ends the run gracefully (drain acks) like Ctrl-C; only possible on the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _publish_loop(stream: EventStream, publisher: Publisher, pace: _Pace) -> int:
    bucket = TokenBucket(pace.rate) if pace.rate else None
    chunk_cap = 5000
    stop = threading.Event()
    sent = messages = 0
    began = time.monotonic()
    last_log, last_sent = began, 0
    warned_future = False
    interrupted = False
    with _stop_on_sigterm(stop):
        try:
            while not stop.is_set():
                now = time.monotonic()
                if pace.duration is not None and now - began >= pace.duration:
                    break
                n = bucket.chunk(chunk_cap) if bucket else chunk_cap
                end = stream.align(sent + n) if stream.layout.form != "single" else sent + n
                if pace.count is not None:
                    end = min(end, pace.count)
                if end <= sent:
                    break
                if bucket:
                    bucket.take(end - sent)
                batch = stream.payloads(sent, end - sent)
                publisher.send_many(batch)
                sent, messages = end, messages + len(batch)
                if now - last_log >= PROGRESS_EVERY_S:
                    sim_ms = stream.sim_time_ms(sent)
                    log.info("simulate: %d events in %d messages, %.0f events/s (last %.0fs), "
                             "%d acked, simulated time %s", sent, messages,
                             (sent - last_sent) / (now - last_log), now - last_log,
                             publisher.acked(), _iso(sim_ms))
                    last_log, last_sent = now, sent
                    if not warned_future and sim_ms > (time.time() + 300) * 1000:
                        warned_future = True
                        log.warning("simulate: simulated time is now ahead of the clock; the "
                                    "service rejects events too far in the future "
                                    "(use --start or a lower --speed)")
        except KeyboardInterrupt:
            interrupted = True
        except PublishError as e:
            print(f"ioc simulate: {e}", file=sys.stderr)
            publisher.close(0.0)
            return 1
        elapsed = time.monotonic() - began
        log.info("simulate: %s after %d events (%d messages) in %.1fs (%.0f events/s); waiting "
                 "for acknowledgements", "interrupted" if interrupted else "done", sent,
                 messages, elapsed, sent / elapsed if elapsed > 0 else 0.0)
        missing = publisher.close(ACK_TIMEOUT_S)
    if missing:
        log.error("simulate: %d of %d messages to %s were not acknowledged", missing, messages,
                  publisher.target)
        return 1
    log.info("simulate: all %d messages acknowledged by %s", messages, publisher.target)
    return 0
