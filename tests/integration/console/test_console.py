"""The operator console as operators and agencies use it, in a real browser against `ioc run`."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from tests.integration.console.conftest import SCREENSHOTS, Console, event
from tests.support.service import http

FEED_ROW = ".feed-panel .feed > li"


def row(page: Page, rule: str, device: str) -> str:
    return f'.feed-panel li[data-rule="{rule}"][data-device="{device}"]'


# When the row entered the page, by the page's clock (the machine's wall clock): Playwright's
# waits poll with a back-off of up to 500 ms, so the time a wait returns is not when the
# operator saw the alert.
APPEARS_AT = """selector => {
  window.__appearedAt = null;
  const seen = () => {
    if (window.__appearedAt === null && document.querySelector(selector)) window.__appearedAt = Date.now();
  };
  new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, attributes: true });
}"""


def shown_ids(page: Page) -> list[str]:
    return page.eval_on_selector_all(FEED_ROW, "rows => rows.map(r => r.dataset.id)")


def test_alert_appears_within_a_second_and_ack_reaches_database_and_other_page(console: Console):
    desk = console.open("operator")
    other = console.open("admin")
    expect(desk.locator(FEED_ROW).first).to_be_visible()

    selector = row(desk, "flood-vi-thanh", "hg-vt-wl-002")
    desk.evaluate(APPEARS_AT, selector)
    started = time.time()
    console.publish(event("hg-vt-wl-002", "water_level", 2.06, "m"))
    desk.wait_for_selector(selector, timeout=5000)
    assert desk.evaluate("window.__appearedAt") / 1000 - started < 1.0
    alert = desk.locator(row(desk, "flood-vi-thanh", "hg-vt-wl-002"))
    expect(alert).to_have_attribute("data-state", "firing")
    expect(alert).to_have_class(re.compile(r"\bflash\b"))
    alert_id = int(alert.get_attribute("data-id"))
    expect(other.locator(f'{FEED_ROW}[data-id="{alert_id}"]')).to_have_attribute("data-state", "firing")
    desk.screenshot(path=str(SCREENSHOTS / "feed-desk-1080p.png"))

    alert.get_by_role("button", name="Xác nhận").click()
    expect(desk.locator("#action-dialog")).to_be_visible()
    desk.fill("#action-note", "Đã báo đội phản ứng nhanh phường 4")
    desk.click("#action-confirm")
    expect(desk.locator("#action-dialog")).to_be_hidden()
    expect(alert).to_have_attribute("data-state", "acknowledged")

    [stored] = console.sql("SELECT state, acknowledged_by FROM alerts WHERE id = $1", alert_id)
    assert (stored["state"], stored["acknowledged_by"]) == ("acknowledged", "test-operator")
    notes = console.sql("SELECT note FROM alert_audit WHERE alert_id = $1 AND action = 'acknowledged'",
                        alert_id)
    assert [n["note"] for n in notes] == ["Đã báo đội phản ứng nhanh phường 4"]
    seen = other.locator(f'{FEED_ROW}[data-id="{alert_id}"]')
    expect(seen).to_have_attribute("data-state", "acknowledged", timeout=2000)
    expect(seen).to_contain_text("test-operator")
    for page in (desk, other):
        page.context.close()


def test_reconnects_after_a_restart_and_shows_alerts_raised_meanwhile_once(console: Console):
    page = console.open("operator")
    console.publish(event("hg-vt-wl-003", "water_level", 1.95, "m"))
    expect(page.locator(row(page, "flood-vi-thanh", "hg-vt-wl-003"))).to_have_count(1)
    resumed_from: list[str | None] = []
    page.on("request", lambda r: resumed_from.append(r.headers.get("last-event-id"))
            if r.url.endswith("/api/v1/alerts/stream") else None)
    console.service.stop()
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    expect(page.locator("#banner")).to_be_visible()
    # Sent while the service is down: the broker keeps it for the service's persistent session.
    console.publish(event("hg-vt-wl-004", "water_level", 2.21, "m"))
    console.service.start()
    console.publish(event("hg-vt-wl-005", "water_level", 2.32, "m"))
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=30_000)
    expect(page.locator("#banner")).to_be_hidden()
    assert resumed_from and all(i and i.isdigit() for i in resumed_from), "resumes with Last-Event-ID"
    for device in ("hg-vt-wl-004", "hg-vt-wl-005"):
        expect(page.locator(row(page, "flood-vi-thanh", device))).to_have_count(1, timeout=5000)
    console.publish(event("hg-vt-wl-001", "water_level", 1.93, "m"))
    expect(page.locator(row(page, "flood-vi-thanh", "hg-vt-wl-001"))).to_have_count(1)

    ids = shown_ids(page)
    assert len(ids) == len(set(ids)), "an alert is shown twice"
    open_ids = {str(r["id"]) for r in console.sql("SELECT id FROM alerts WHERE state <> 'resolved'")}
    assert set(ids) == open_ids
    page.context.close()


def test_catches_up_after_a_network_drop_before_any_live_event(console: Console):
    """With no event id to resume from yet, the page catches up from the alert list on reconnecting."""
    page = console.open("operator")
    [target] = console.sql("SELECT id FROM alerts WHERE rule_id = 'heavy-rain' AND state = 'firing'")
    shown = page.locator(f'{FEED_ROW}[data-id="{target["id"]}"]')
    expect(shown).to_have_count(1)
    page.context.set_offline(True)
    expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting", timeout=10_000)
    status, _ = http("POST", f"{console.url}/api/v1/alerts/{target['id']}/resolve",
                     '{"note": "Trời đã tạnh"}'.encode(), key=console.keys["admin"])
    assert status == 200
    page.context.set_offline(False)
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=15_000)
    expect(shown).to_have_count(0)
    page.select_option("#f-state", "resolved")
    expect(shown).to_have_attribute("data-state", "resolved")
    page.context.close()


def test_agency_sees_only_its_district_and_cannot_ack(console: Console):
    page = console.open("agency_vt")
    expect(page.locator(FEED_ROW).first).to_be_visible()
    expect(page.locator("#who")).to_contain_text("Vị Thanh")
    districts = page.eval_on_selector_all(FEED_ROW, "rows => rows.map(r => r.dataset.district)")
    assert districts and set(districts) == {"Vị Thanh"}
    others = console.sql("SELECT id FROM alerts WHERE district <> 'Vị Thanh' AND state <> 'resolved'")
    assert others, "the seed raises alerts outside Vị Thanh"
    expect(page.locator(".district-card")).to_have_count(1)
    expect(page.locator(".district-card")).to_have_attribute("data-district", "Vị Thanh")
    expect(page.locator("button.ack, button.resolve")).to_have_count(0)

    alert_id = shown_ids(page)[0]
    status = page.evaluate(
        """async (id) => (await fetch(`/api/v1/alerts/${id}/ack`, {method: 'POST',
             headers: {Authorization: `Bearer ${sessionStorage.getItem('ioc.apiKey')}`}})).status""",
        alert_id)
    assert status == 403
    page.context.close()


def test_device_chart_draws_history_thresholds_and_gaps(console: Console):
    page = console.open("operator", "/device/hg-vt-wl-001")
    expect(page.locator(".device-head h2")).to_have_text("Trạm Cầu Cái Nhúc")
    chart = page.locator(".chart")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(page.locator('.seg-btn[data-value="24h"]')).to_have_attribute("aria-pressed", "true")
    legend = page.locator('.threshold-legend li[data-rule="flood-vi-thanh"]')
    expect(legend).to_have_count(2)
    expect(legend.first).to_contain_text("1,8")
    assert int(chart.get_attribute("data-gaps")) >= 20  # the two-hour outage, 5-minute buckets
    expect(page.locator(".chart-note")).to_contain_text("không có dữ liệu")
    expect(page.locator(".device-side .feed > li").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "device-chart-1080p.png"))

    page.click('.seg-btn[data-value="7d"]')
    expect(page.locator('.seg-btn[data-value="7d"]')).to_have_attribute("aria-pressed", "true")
    expect(chart.locator("canvas")).to_have_count(1)
    page.click('.seg-btn[data-value="1h"]')
    expect(page.locator('.seg-btn[data-value="1h"]')).to_have_attribute("aria-pressed", "true")
    page.context.close()


def test_wall_screen_has_no_controls_and_labels_switch_to_english(console: Console):
    page = console.open("operator", "/wall")
    expect(page.locator(".wall-grid .district-card")).to_have_count(8)
    expect(page.locator(".wall-feed > li").first).to_be_visible()
    expect(page.locator(".view button")).to_have_count(0)
    expect(page.locator(".controls")).to_be_hidden()
    page.screenshot(path=str(SCREENSHOTS / "wall-1080p.png"))

    page.keyboard.press("Escape")
    expect(page.locator(".feed-panel")).to_be_visible()
    page.locator("[data-lang-toggle]").last.click()
    expect(page.locator("#feed-title")).to_have_text("Alerts")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.screenshot(path=str(SCREENSHOTS / "feed-laptop-en.png"))
    page.context.close()
