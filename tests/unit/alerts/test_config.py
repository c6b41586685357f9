"""config/notifications.yaml: the shipped file loads; every mistake names the entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from ioc.alerts import NotificationConfigError, load_notifications

REPO = Path(__file__).resolve().parents[3]

GOOD = """
webhooks:
  - name: duty-officer
    url: https://hooks.example.gov.vn/ioc/duty
    secret_env: IOC_TEST_WEBHOOK_SECRET
    match: {severity: critical}
  - name: vi-thanh
    url: http://127.0.0.1:9000/alerts
    secret: abc
    match: {district: "Vị Thanh", rule_id: [flood-vi-thanh, heavy-rain]}
    changes: [fired, acknowledged, resolved]
    timeout: 10s
    max_attempts: 3
    max_age: 2h
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "notifications.yaml"
    path.write_text(text, encoding="utf-8")
    return load_notifications(path)


def test_shipped_file_and_missing_file_load(tmp_path: Path) -> None:
    assert load_notifications(REPO / "config" / "notifications.yaml").webhooks == ()
    assert load_notifications(tmp_path / "absent.yaml").webhooks == ()


def test_example_loads_with_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOC_TEST_WEBHOOK_SECRET", "from-env")
    duty, vt = load(tmp_path, GOOD).webhooks
    assert duty.secret == "from-env" and duty.changes == {"fired", "resolved"}
    assert (duty.timeout_s, duty.max_attempts, duty.max_age_s) == (5.0, 12, 86400.0)
    assert (vt.timeout_s, vt.max_attempts, vt.max_age_s) == (10.0, 3, 7200.0)
    alert = {"district": "Vị Thanh", "rule_id": "heavy-rain", "severity": "warning"}
    assert vt.wants("fired", alert) and vt.wants("acknowledged", alert)
    assert not vt.wants("repeated", alert)
    assert not vt.wants("fired", {**alert, "district": "Ngã Bảy"})
    assert not duty.wants("fired", alert) and duty.wants("fired", {**alert, "severity": "critical"})


@pytest.mark.parametrize(("text", "message"), [
    ("webhooks: {}", "'webhooks' must be a list"),
    ("hooks: []", "expected a mapping with the key 'webhooks'"),
    ("webhooks: [{url: 'http://x', secret: s}]", "'name' is required"),
    ("webhooks: [{name: a, url: 'ftp://x', secret: s}]", "webhooks[0] (a): 'url'"),
    ("webhooks: [{name: a, url: 'http://x'}]", "'secret' or 'secret_env' is required"),
    ("webhooks: [{name: a, url: 'http://x', secret_env: IOC_TEST_UNSET_SECRET}]",
     "IOC_TEST_UNSET_SECRET is not set"),
    ("webhooks: [{name: a, url: 'http://x', secret: s, match: {colour: red}}]", "'match' keys"),
    ("webhooks: [{name: a, url: 'http://x', secret: s, changes: [exploded]}]", "'changes'"),
    ("webhooks: [{name: a, url: 'http://x', secret: s, timeout: soon}]", "cannot parse duration"),
    ("webhooks: [{name: a, url: 'http://x', secret: s, max_attempts: 0}]", "'max_attempts'"),
    ("webhooks: [{name: a, url: 'http://x', secret: s, retries: 3}]", "unknown key(s) retries"),
    ("webhooks: [{name: a, url: 'http://x', secret: s}, {name: a, url: 'http://y', secret: t}]",
     "names must be unique"),
    ("webhooks: [", "not valid YAML"),
])
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(NotificationConfigError) as err:
        load(tmp_path, text)
    assert message in str(err.value) and "notifications.yaml" in str(err.value)
