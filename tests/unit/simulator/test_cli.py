"""``ioc simulate`` without a broker: pacing, usage errors, and the stdout target."""

from __future__ import annotations

import argparse
import time

import msgspec
import pytest

from ioc.simulator import add_simulate_arguments, run_simulate
from ioc.simulator.pacing import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize("rate", [1.0, 37.0, 2000.0, 50_000.0])
def test_token_bucket_keeps_the_long_run_rate(rate: float) -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate, clock=clock, sleep=clock.sleep)
    total = 0
    while total < rate * 10:
        n = bucket.chunk(5000)
        bucket.take(n)
        total += n
    assert clock.now == pytest.approx((total - 1) / rate, rel=1e-9)


def test_token_bucket_does_not_bank_idle_time_beyond_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100.0, clock=clock, sleep=clock.sleep)
    clock.now += 60.0  # a stalled publisher
    bucket.take(bucket.burst)
    before = clock.now
    bucket.take(100)
    assert clock.now - before == pytest.approx(1.0)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_simulate_arguments(parser)
    return parser.parse_args(list(argv))


def test_missing_target_is_a_one_line_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("IOC_MQTT_URL", raising=False)
    monkeypatch.delenv("IOC_KAFKA_BOOTSTRAP", raising=False)
    assert run_simulate(_args("--count", "1")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ioc simulate: no target") and "\n" not in err


def test_unreachable_broker_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_simulate(_args("--mqtt", "mqtt://127.0.0.1:1", "--count", "1")) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ioc simulate: cannot connect") and "\n" not in err


def test_stdout_target_writes_the_stream(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    rc = run_simulate(_args("--stdout", "--count", "25", "--rate", "0", "--seed", "4",
                            "--devices", "10", "--start", "2026-11-23T07:00:00+07:00"))
    assert rc == 0
    lines = capsysbinary.readouterr().out.splitlines()
    assert len(lines) == 25
    events = [msgspec.json.decode(line) for line in lines]
    assert events[0]["device_id"] == "hg-vt-wl-001"
    assert events[0]["ts"] == "2026-11-23T07:00:00.000+07:00"
    assert len({e["device_id"] for e in events}) == 10


def test_flood_scenario_defaults_to_a_fast_clock_that_ends_near_now(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    rc = run_simulate(_args("--stdout", "--scenario", "flood", "--count", "2000", "--rate", "0",
                            "--epoch-ms", "--seed", "1"))
    assert rc == 0
    ts = [msgspec.json.decode(x).get("ts") for x in capsysbinary.readouterr().out.splitlines()]
    assert max(ts) <= time.time() * 1000 + 60_000  # not in the future


@pytest.mark.parametrize("bad", [["--rate", "-1"], ["--duration", "soon"], ["--devices", "0"],
                                 ["--start", "2026-11-23T07:00:00"], ["--form", "xml"]])
def test_bad_arguments_are_rejected_by_the_parser(bad: list[str]) -> None:
    with pytest.raises(SystemExit):
        _args(*bad)
