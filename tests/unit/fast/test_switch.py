"""The off switch: IOC_ACCELERATE reaches the process-wide switch, and with it off no compiled
code runs at all -- decoding and COPY encoding give the same answers without it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ioc import fast
from ioc.fast import scan
from ioc.ingest import decode as decode_module
from ioc.ingest.decode import decode
from ioc.model import RawMessage
from ioc.settings import Settings
from ioc.storage import copy_binary
from ioc.storage.copy_binary import encode_events
from tests.support.service import ServiceProcess
from tests.unit.fast import accelerated
from tests.unit.ingest.test_decode_fuzz import DEVICES, LIMITS, NOW_US


@pytest.mark.parametrize(("text", "on"), [("false", False), ("0", False), ("off", False),
                                          ("true", True), ("1", True)])
def test_the_setting_reads_ioc_accelerate(monkeypatch: pytest.MonkeyPatch, text: str,
                                          on: bool) -> None:
    monkeypatch.setenv("IOC_ACCELERATE", text)
    assert Settings(_env_file=None).accelerate is on


def test_the_accelerators_are_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IOC_ACCELERATE", raising=False)
    assert Settings(_env_file=None).accelerate is True
    assert fast.enabled()
    with accelerated(False):
        assert not fast.enabled()
    assert fast.enabled()


def test_services_started_by_tests_take_ioc_accelerate(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("IOC_ACCELERATE", "false")
    monkeypatch.setenv("IOC_BATCH_MAX", "7")
    env = ServiceProcess(tmp_path, {"IOC_AUTH": "on"}).child_env()
    assert env["IOC_ACCELERATE"] == "false" and env["IOC_AUTH"] == "on"
    assert "IOC_BATCH_MAX" not in env


def test_with_the_switch_off_no_compiled_code_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every accelerator replaced by one that fails: the answers are those of the compiled
    code, made without it."""
    good = [json.dumps({"device_id": DEVICES[i % 3], "kind": "water_level", "value": i / 4,
                        "ts": NOW_US // 1000 - i, "attrs": {"n": [i]}}).encode() for i in range(30)]
    hostile = [b'{"device_id":"' + DEVICES[0].encode() + b'","kind":"rainfall","ts":1,'
               b'"value":1,"attrs":' + b"[" * 80 + b"]" * 80 + b"}",
               b'{"x": "\xff"}', b'[' * 100 + b']' * 100]
    batches = [[RawMessage(p, "kafka", "ioc.events", 0, i, DEVICES[i % 3].encode())
                for i, p in enumerate(good)],
               [RawMessage(p, "http", offset=i) for i, p in enumerate(good + hostile)]]
    with accelerated(True):
        want = [decode(b, LIMITS, NOW_US) for b in batches]
        want_copy = [bytes(encode_events(r.events, ordinal=True)) for r in want]

    def compiled(*args: object) -> None:
        raise AssertionError("compiled code ran with the accelerators off")

    for module, name in ((scan, "scan"), (scan, "screen"), (scan, "nesting"),
                         (decode_module, "buffer_codes"), (copy_binary, "write_rows")):
        monkeypatch.setattr(module, name, compiled)
    with accelerated(False):
        got = [decode(b, LIMITS, NOW_US) for b in batches]
        got_copy = [bytes(encode_events(r.events, ordinal=True)) for r in got]
    assert [r.dead for r in got] == [r.dead for r in want]
    assert [r.message_index.tolist() for r in got] == [r.message_index.tolist() for r in want]
    assert got_copy == want_copy
