"""Pure parts of alerts: topic slugs, timestamps, signatures, backoff, grouped messages, filters."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

from hypothesis import given
from hypothesis import strategies as st

from ioc.alerts import FeedFilter, signature
from ioc.alerts.notifier import BACKOFF_MAX_S, Message, backoff_s, group_payload
from ioc.alerts.shape import district_slug, iso


def test_district_slugs_are_ascii_topic_segments() -> None:
    assert district_slug("Vị Thanh") == "vi-thanh"
    assert district_slug("Ngã Bảy") == "nga-bay"
    assert district_slug("Châu Thành A") == "chau-thanh-a"
    assert district_slug("Thị xã Long Mỹ") == "thi-xa-long-my"
    assert district_slug("Đức Hòa") == "duc-hoa"
    assert district_slug(None) == district_slug("") == district_slug("#/+") == "unknown"


def test_timestamps_show_the_province_offset() -> None:
    assert iso(1_790_000_000_000_000) == "2026-09-21T21:13:20+07:00"
    assert iso(dt.datetime(2026, 11, 23, 0, 0, 0, 5, tzinfo=dt.UTC)) == (
        "2026-11-23T07:00:00.000005+07:00")
    assert iso(None) is None


@given(st.integers(-(2**50), 2**52))
def test_microsecond_times_format_as_the_zone_does(us: int) -> None:
    """The fixed +07:00 of microsecond times since 1975-06-12T16:00Z matches the zone's rules,
    and times before it (+08:00 then) still go through them."""
    assert iso(us) == iso(dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us))


def test_the_zone_changed_to_a_fixed_offset_in_1975() -> None:
    assert iso(171_820_800_000_000 - 1) == "1975-06-12T23:59:59.999999+08:00"
    assert iso(171_820_800_000_000) == "1975-06-12T23:00:00+07:00"


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    body = '{"a":"Vị Thanh"}'.encode()
    want = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert signature("k", body) == f"sha256={want}"


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempt, full in ((1, 1.0), (2, 2.0), (5, 16.0), (30, BACKOFF_MAX_S)):
        delays = [backoff_s(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), attempt
        assert len(set(delays)) > 100  # jittered
    assert backoff_s(1, retry_after_s=120) == 120
    assert backoff_s(1, retry_after_s=10**6) == 3600


def test_grouped_message_lists_devices_once_and_every_alert() -> None:
    alerts = [{"device_id": d, "severity": "critical", "id": i}
              for i, d in enumerate(["hg-vt-wl-001", "hg-vt-wl-002", "hg-vt-wl-001"])]
    msg = group_payload("fired", "flood-vi-thanh", "Vị Thanh", alerts)
    assert msg["count"] == 3 and msg["devices"] == ["hg-vt-wl-001", "hg-vt-wl-002"]
    assert msg["alerts"] == alerts and msg["severity"] == "critical"


def test_message_body_is_canonical() -> None:
    a = Message(1, "d-1", "webhook", "ops", {"b": 1, "a": {"z": 1, "y": "Vị"}}, 0)
    b = Message(1, "d-1", "webhook", "ops", {"a": {"y": "Vị", "z": 1}, "b": 1}, 3)
    assert a.body() == b.body()
    assert json.loads(a.body()) == {"delivery_id": "d-1", "a": {"y": "Vị", "z": 1}, "b": 1}
    assert Message(2, "d", "mqtt", "ioc/v1/alerts/vi-thanh", {}, 0).key == ("mqtt", "")


def test_feed_filter() -> None:
    assert FeedFilter().matches(None, "info")
    vt = FeedFilter(frozenset({"Vị Thanh"}), "critical")
    assert vt.matches("Vị Thanh", "critical")
    assert not vt.matches("Vị Thanh", "warning") and not vt.matches(None, "critical")
