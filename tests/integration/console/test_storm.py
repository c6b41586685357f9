"""An alert storm in the console: 500 gauges of Vị Thanh over the alarm within seconds, while
a second wave rises in Ngã Bảy. The feed shows each wave as one row that opens to its devices;
the page answers clicks during the storm; acknowledging the group reaches the database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from ioc.embedded.mosquitto import EmbeddedMosquitto
from ioc.embedded.postgres import EmbeddedPostgres
from tests.integration.console.conftest import (
    RULES_YAML,
    SCREENSHOTS,
    Console,
    event,
    running_console,
)

VI_THANH = [f"hg-vt-wl-s{i:03d}" for i in range(500)]
NGA_BAY = [f"hg-nb-wl-s{i:03d}" for i in range(100)]
STORM = ".feed-panel .feed > li[data-storm]"
NOTE = "Triều cường: đã báo Ban chỉ huy phòng chống thiên tai"

# When the click's effect is on screen, from the moment the browser took the click: a frame
# after the click's handlers ran, by the page's clock.
CLICK_TIMER = """() => {
  window.__clickMs = null;
  document.addEventListener('click', (e) => requestAnimationFrame(() => setTimeout(() => {
    window.__clickMs = performance.now() - e.timeStamp;
  })), { capture: true, once: true });
}"""


def devices_yaml(path: Path) -> Path:
    lines = ["devices:"]
    for ids, district, lat in ((VI_THANH, "Vị Thanh", 9.78), (NGA_BAY, "Ngã Bảy", 9.81)):
        for i, device in enumerate(ids):
            lines += [f"  - id: {device}", f'    name: "Trạm triều {district} {i + 1}"',
                      "    kind: water_level", f'    district: "{district}"',
                      f"    location: [{lat + i * 1e-4:.4f}, 105.47]", "    interval: 5m"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def storm(pg_server: EmbeddedPostgres, mosquitto: EmbeddedMosquitto, browser: Browser,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("storm")
    env = {"IOC_DEVICES_FILE": str(devices_yaml(tmp / "devices.yaml")), "IOC_STORM_WINDOW": "30s"}
    with running_console(pg_server, mosquitto, browser, tmp, "storm", RULES_YAML, env) as running:
        yield running


def rising(devices: list[str], base: float) -> list[dict]:
    """One reading per device over the alarm, each a millimetre above the one before."""
    return [event(d, "water_level", round(base + i * 0.001, 3), "m") for i, d in enumerate(devices)]


def click_ms(page: Page, locator) -> float:
    page.evaluate(CLICK_TIMER)
    locator.click()
    page.wait_for_function("window.__clickMs !== null")
    return page.evaluate("window.__clickMs")


def test_a_storm_is_one_row_that_opens_and_is_acknowledged_as_a_group(storm: Console):
    page = storm.open("operator")
    for i in range(0, len(VI_THANH), 100):
        storm.ingest(rising(VI_THANH, 1.81)[i:i + 100])
    group = page.locator(f'{STORM}[data-district="Vị Thanh"]')
    expect(group).to_have_attribute("data-devices", "500", timeout=15_000)
    expect(group).to_have_attribute("data-firing", "500")
    expect(page.locator(STORM)).to_have_count(1)
    expect(page.locator(".feed-panel .feed > li:not([data-storm])")).to_have_count(0)
    expect(group.locator(".alert-msg")).to_have_text("Bão cảnh báo: 500 thiết bị")
    expect(group.locator(".alert-meta .value")).to_have_text("2,31 m")  # the highest, 2.309 m
    expect(group.locator(".storm-members > li")).to_have_count(0)

    # The second wave streams in while the operator opens the first.
    wave = threading.Thread(target=lambda: [storm.ingest(rising(NGA_BAY, 1.95)[i:i + 10])
                                            for i in range(0, len(NGA_BAY), 10)])
    wave.start()
    try:
        opened_ms = click_ms(page, group.locator("button.expand"))
        expect(group.locator(".storm-members > li")).to_have_count(500)
        expect(group.locator("button.expand")).to_have_attribute("aria-expanded", "true")
    finally:
        wave.join()
    assert opened_ms < 200, f"opening the storm took {opened_ms:.0f} ms"
    expect(page.locator(f'{STORM}[data-district="Ngã Bảy"]')).to_have_attribute(
        "data-devices", "100", timeout=10_000)
    page.screenshot(path=str(SCREENSHOTS / "storm-open-1080p.png"))
    closed_ms = click_ms(page, group.locator("button.expand"))
    expect(group.locator(".storm-members > li")).to_have_count(0)
    assert closed_ms < 200, f"closing the storm took {closed_ms:.0f} ms"

    dialog_ms = click_ms(page, group.locator("button.ack-group"))
    expect(page.locator("#action-dialog")).to_be_visible()
    assert dialog_ms < 200, f"the acknowledge dialog took {dialog_ms:.0f} ms"
    expect(page.locator("#action-confirm")).to_have_text("Xác nhận 500 cảnh báo")
    page.fill("#action-note", NOTE)
    page.click("#action-confirm")
    expect(page.locator("#action-dialog")).to_be_hidden()
    expect(group).to_have_attribute("data-firing", "0", timeout=10_000)
    expect(group.locator('.state-chip[data-state="acknowledged"]')).to_have_text("500 đã xác nhận")
    expect(page.locator(f'{STORM}[data-district="Ngã Bảy"]')).to_have_attribute("data-firing", "100")

    rows = storm.sql("SELECT a.state, a.acknowledged_by, u.actor, u.note FROM alerts a "
                     "JOIN alert_audit u ON u.alert_id = a.id AND u.action = 'acknowledged' "
                     "WHERE a.district = 'Vị Thanh'")
    assert len(rows) == 500
    assert {(r["state"], r["acknowledged_by"], r["actor"], r["note"]) for r in rows} == {
        ("acknowledged", "test-operator", "test-operator", NOTE)}
    [firing] = storm.sql("SELECT count(*) AS n FROM alerts WHERE district = 'Ngã Bảy' "
                         "AND state = 'firing'")
    assert firing["n"] == 100
    page.screenshot(path=str(SCREENSHOTS / "storm-acknowledged-1080p.png"))
    page.context.close()


def test_wall_screen_shows_each_storm_as_one_row(storm: Console):
    page = storm.open("operator", "/wall")
    expect(page.locator(".wall-feed > li[data-storm]")).to_have_count(2)
    expect(page.locator(".wall-feed > li:not([data-storm])")).to_have_count(0)
    expect(page.locator(".view button")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "storm-wall-1080p.png"))
    page.context.close()
