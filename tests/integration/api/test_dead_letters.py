"""GET /dead-letters and POST /dead-letters/{id}/replay through the running service."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time

import pytest

from tests.integration.api.conftest import Api


def event(event_id: str, device: str = "hg-vt-wl-001") -> bytes:
    ts = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60))
    return json.dumps({"event_id": event_id, "device_id": device, "kind": "water_level",
                       "ts": ts, "value": 1.5, "unit": "m", "attrs": {"trạm": "Cái Nhúc"}},
                      ensure_ascii=False).encode()


def dead_letter(api: Api, raw: bytes, reason: str = "unknown_device", source: str = "kafka",
                topic: str | None = "ioc.events") -> int:
    """A dead letter as the pipeline stores it (here: from a time IOC_REQUIRE_KNOWN_DEVICES was on)."""
    return api.sql(
        "INSERT INTO dead_letters (source, topic, \"partition\", \"offset\", reason, detail, raw)"
        " VALUES ($1, $2, 0, 42, $3, 'then unknown', $4) RETURNING id",
        source, topic, reason, raw)[0][0]


@pytest.fixture(scope="module")
def letters(api: Api) -> dict[str, int]:
    r = api.post("/ingest", "ingest", content=b"{not json")
    assert r.status_code == 422
    return {
        "bad_json": api.sql("SELECT max(id) FROM dead_letters")[0][0],
        "fixable": dead_letter(api, event("dl-fixable")),
        "racy": dead_letter(api, event("dl-racy")),
        "mismatch": dead_letter(api, event("dl-mismatch"), reason="topic_mismatch",
                                source="mqtt", topic="ioc/v1/events/hg-other-001"),
    }


def test_list_shape_filters_and_paging(api: Api, letters: dict[str, int]) -> None:
    body = api.get("/dead-letters", "operator").json()
    items = {i["id"]: i for i in body["items"]}
    assert set(letters.values()) <= set(items)
    bad = items[letters["bad_json"]]
    assert bad["reason"] == "bad_json" and bad["source"] == "http"
    assert base64.b64decode(bad["raw"]) == b"{not json" and bad["preview"] == "{not json"
    assert bad["raw_size"] == 9 and bad["replayed_at"] is None
    assert bad["received_at"].endswith("+07:00")
    fixable = items[letters["fixable"]]
    assert fixable["preview"].startswith('{"event_id": "dl-fixable"') and "trạm" in fixable["preview"]
    assert (fixable["topic"], fixable["partition"], fixable["offset"]) == ("ioc.events", 0, 42)
    only = api.get("/dead-letters", params={"reason": "bad_json"}).json()["items"]
    assert {i["reason"] for i in only} == {"bad_json"}
    mqtt = api.get("/dead-letters", params={"source": "mqtt,http"}).json()["items"]
    assert {i["source"] for i in mqtt} == {"mqtt", "http"}
    ids, cursor = [], None
    while True:
        page = api.get("/dead-letters", params={"limit": 1, **({"cursor": cursor} if cursor else {})}
                       ).json()
        ids += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert ids == sorted(items, reverse=True)


def test_replay_stores_once_then_409(api: Api, letters: dict[str, int]) -> None:
    r = api.post(f"/dead-letters/{letters['fixable']}/replay", "operator")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 1 and body["duplicates"] == 0 and body["replayed_by"] == "test-operator"
    stored = api.sql("SELECT device_id, value FROM events WHERE event_id = 'dl-fixable'")
    assert [tuple(x) for x in stored] == [("hg-vt-wl-001", 1.5)]
    again = api.post(f"/dead-letters/{letters['fixable']}/replay", "admin")
    assert again.status_code == 409 and again.json()["error"] == "conflict"
    listed = api.get("/dead-letters", params={"replayed": "true"}).json()["items"]
    assert [i["id"] for i in listed] == [letters["fixable"]]
    assert listed[0]["replayed_by"] == "test-operator"
    assert letters["fixable"] not in {i["id"] for i in api.get(
        "/dead-letters", params={"replayed": "false"}).json()["items"]}


def test_concurrent_replays_store_once(api: Api, letters: dict[str, int]) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: api.post(f"/dead-letters/{letters['racy']}/replay"),
                                range(4)))
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409]
    assert api.sql("SELECT count(*) FROM events WHERE event_id = 'dl-racy'")[0][0] == 1


@pytest.mark.parametrize("name, reason", [("bad_json", "bad_json"),
                                          ("mismatch", "topic_mismatch")])
def test_replay_that_still_fails_is_422_and_unchanged(api: Api, letters: dict[str, int],
                                                      name: str, reason: str) -> None:
    before = api.sql("SELECT count(*) FROM dead_letters")[0][0]
    r = api.post(f"/dead-letters/{letters[name]}/replay")
    assert r.status_code == 422, r.text
    assert [x["reason"] for x in r.json()["detail"]["rejected"]] == [reason]
    row = api.sql("SELECT replayed_at FROM dead_letters WHERE id = $1", letters[name])[0]
    assert row["replayed_at"] is None
    assert api.sql("SELECT count(*) FROM dead_letters")[0][0] == before


def test_missing_dead_letter_is_404(api: Api) -> None:
    r = api.post("/dead-letters/987654321/replay")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
