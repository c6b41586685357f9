"""Six hours of flood over HTTP, out of order, duplicated and in buffered uploads: the stored
alerts are those of evaluating every reading in event time (issue #21)."""

from __future__ import annotations

import collections
import time

from tests.conftest import new_database
from tests.integration.eventtime.conftest import ServiceFactory
from tests.integration.eventtime.scenario import (
    HOURLY_LOGGER,
    Tally,
    deliveries,
    difference,
    expected_alerts,
    flood,
    flood_start,
    sql,
    stored_alerts,
    wait_for_alerts,
    wait_until,
)
from tests.support.service import http

SILENT_HOURLY_LOGGER = ("SELECT id, state, resolved_by FROM alerts"
                        " WHERE rule_id = 'gauge-silent' AND device_id = $1")


def test_six_hour_flood_over_http_gives_the_event_time_alerts(pg_server,
                                                             services: ServiceFactory) -> None:
    dsn = new_database(pg_server, "eventtime_flood_http")
    svc = services("flood", dsn, IOC_BATCH_WAIT_MS="10").start()
    start = flood_start()
    truth = flood(start)
    posts = deliveries(truth, start)
    tally = Tally()
    began = time.monotonic()
    for post in posts:
        status, body = http("POST", f"{svc.url}/api/v1/ingest", post.body())
        assert status == 200, (post.what, post.step, body)
        new, dup = tally.expect(post)
        assert (body["accepted"], body["duplicates"], body["rejected"]) == (new, dup, []), (
            post.what, post.step, body)
        if post.pause_after:
            # The hourly logger's clock trails the frontier by 45 min: the absence timer (every
            # 5 s, "now" following the backlog) reports it silent, which its upload then
            # shows it was not.
            assert wait_until(lambda: bool(sql(dsn, SILENT_HOURLY_LOGGER, HOURLY_LOGGER)), 20), (
                "the absence timer did not report the hourly logger silent")
    posting_s = time.monotonic() - began

    assert sql(dsn, "SELECT count(*) AS n FROM events")[0]["n"] == len(truth)
    want = expected_alerts(truth, now_us=time.time_ns() // 1000)
    got = wait_for_alerts(dsn, want, timeout=30)
    assert got == want, difference(got, want)
    assert stored_alerts(dsn) == want, "nothing changed after the alerts settled"

    # The timer's report on the hourly logger was withdrawn by its upload, with an audit row.
    reported = sql(dsn, SILENT_HOURLY_LOGGER, HOURLY_LOGGER)
    assert reported and all((r["state"], r["resolved_by"]) == ("resolved", "late-data")
                            for r in reported), reported
    # Late readings raised, amended and withdrawn alerts: each is audited and in the feed.
    audit = sql(dsn, "SELECT a.rule_id, u.action, u.actor, u.note FROM alert_audit u"
                     " JOIN alerts a ON a.id = u.alert_id")
    by_late_data = collections.Counter(r["action"] for r in audit if r["actor"] == "late-data")
    assert by_late_data["corrected"] and by_late_data["resolved"], by_late_data
    assert all(r["note"] for r in audit if r["actor"] == "late-data")
    feed = collections.Counter(r["change"] for r in sql(dsn, "SELECT change FROM alert_feed"))
    assert feed["corrected"] == by_late_data["corrected"], (feed, by_late_data)
    print(f"\n{len(truth)} readings in {len(posts)} posts ({posting_s:.1f} s); "
          f"{len(want)} alerts; corrections audited: {dict(by_late_data)}")
