"""Schemathesis over /openapi.json for the history routes, with an admin key.

Every generated request (documented parameters, valid and invalid) must get no server error,
invalid ones must be refused, and every answer must match the documented status codes,
content types, headers and schemas.
(Schemathesis' own pytest plugin does not work with pytest 9, so each operation's
Hypothesis strategy is driven here directly.)
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.integration.api.conftest import Api, readings

ROUTES = r"^/api/v1/(events|devices|dead-letters)"
# Schema-valid requests may still be refused with 422 by rules a schema cannot state (an
# unknown time zone, an opaque cursor, `to` before `from`, a dead letter that still fails).
SEMANTIC = positive_data_acceptance
OPERATIONS = ["GET /api/v1/events", "GET /api/v1/events/aggregate", "GET /api/v1/devices",
              "GET /api/v1/devices/{device_id}", "GET /api/v1/devices/{device_id}/completeness",
              "GET /api/v1/dead-letters", "POST /api/v1/dead-letters/{dead_letter_id}/replay"]


@pytest.fixture(scope="module")
def history_schema(api: Api) -> schemathesis.BaseSchema:
    now = int(time.time()) * 1_000_000
    api.store(readings("hg-vt-wl-001", now - 3_600_000_000, 60, attrs='{"trạm": "Cái Nhúc"}'))
    api.store(readings("hg-cta-wl-001", now - 3_600_000_000, 30, step_s=120))
    api.post("/ingest", "ingest", content=b"\xff not json")
    return schemathesis.openapi.from_url(api.service.url + "/openapi.json").include(
        path_regex=ROUTES)


def test_every_history_route_is_covered(history_schema: schemathesis.BaseSchema) -> None:
    found = sorted(f"{r.ok().method.upper()} {r.ok().path}"
                   for r in history_schema.get_all_operations())
    assert found == sorted(OPERATIONS)


@pytest.mark.parametrize("label", OPERATIONS)
def test_history_route_conforms(history_schema: schemathesis.BaseSchema, api: Api,
                                label: str) -> None:
    method, path = label.split(" ")
    operation = history_schema[path][method]
    headers = api.headers("admin")

    @given(case=operation.as_strategy())
    @settings(max_examples=80, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=headers, timeout=60, excluded_checks=[SEMANTIC])

    check()
