"""Silences: suppress notifications (webhooks, MQTT) for matching alerts during a time window.

Alerts are still recorded, with ``silenced = true``; the live feed shows them. Operators and
admins create and delete; every reader can list (an agency key limited to districts sees
silences of its districts and those without a district matcher).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ioc.alerts.silences import create_silence, get_silence, list_silences
from ioc.api.deps import OperatorKey, ReaderKey, ServiceDep, actor
from ioc.api.errors import ApiError, error_responses
from ioc.api.params import Timestamp
from ioc.durations import parse_duration
from ioc.storage.alerts import delete_silence

router = APIRouter(tags=["silences"])


class Matchers(BaseModel):
    """Exact matches on the alert's fields; every one given must match (at least one)."""

    model_config = ConfigDict(extra="forbid")
    rule_id: str | None = None
    device_id: str | None = None
    district: str | None = None
    severity: Literal["info", "warning", "critical"] | None = None


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    matchers: Matchers
    starts_at: AwareDatetime | None = Field(None, description="Default: now.")
    ends_at: AwareDatetime | None = Field(None, description="Give this or `duration`.")
    duration: str | None = Field(None, examples=["2h"], description="From starts_at, e.g. 30m, 2h.")
    comment: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _window(self) -> SilenceIn:
        """Fills in starts_at (now) and ends_at (from duration), so both are set after this."""
        if not self.matchers.model_dump(exclude_none=True):
            raise ValueError("give at least one matcher (rule_id, device_id, district, severity)")
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give exactly one of ends_at and duration")
        now = dt.datetime.now(dt.UTC)
        self.starts_at = self.starts_at or now
        if self.duration is not None:
            try:
                self.ends_at = self.starts_at + dt.timedelta(seconds=parse_duration(self.duration))
            except OverflowError:
                raise ValueError("the silence would end after the year 9999") from None
        if self.ends_at is None or self.ends_at <= self.starts_at:
            raise ValueError("the silence must end after it starts")
        if self.ends_at <= now:
            raise ValueError("the silence would already be over")
        return self


class Silence(BaseModel):
    id: int
    matchers: dict[str, str]
    starts_at: Timestamp
    ends_at: Timestamp
    comment: str | None
    created_by: str | None
    created_at: Timestamp
    active: bool = Field(description="In its window now.")


class SilencePage(BaseModel):
    items: list[Silence]
    next_cursor: str | None


@router.post("/silences", response_model=Silence, status_code=201,
             responses=error_responses(401, 403, 422), summary="Create a silence")
async def silences_create(service: ServiceDep, key: OperatorKey, body: SilenceIn) -> Silence:
    matchers = body.matchers.model_dump(exclude_none=True)
    if key.districts is not None and matchers.get("district") not in key.districts:
        raise ApiError(403, "forbidden", "this key may only silence its own districts")
    async with service.api_pool.acquire() as conn:
        row = await create_silence(conn, matchers, body.starts_at, body.ends_at, body.comment,
                                   actor(key))
    return Silence(**row)


@router.get("/silences", response_model=SilencePage, responses=error_responses(400, 401, 403),
            summary="Silences, newest first (ended ones only with include_expired)")
async def silences_list(
    service: ServiceDep, key: ReaderKey, include_expired: bool = False,
    cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> SilencePage:
    if cursor is not None and not cursor.isdigit():
        raise ApiError(400, "bad_request", "invalid cursor")
    async with service.api_pool.acquire() as conn:
        items = await list_silences(conn, include_expired=include_expired,
                                    districts=key.districts,
                                    before_id=int(cursor) if cursor else None, limit=limit)
    return SilencePage(items=[Silence(**s) for s in items],
                       next_cursor=str(items[-1]["id"]) if len(items) == limit else None)


@router.get("/silences/{silence_id}", response_model=Silence,
            responses=error_responses(401, 403, 404), summary="One silence")
async def silences_get(service: ServiceDep, key: ReaderKey, silence_id: int) -> Silence:
    async with service.api_pool.acquire() as conn:
        row = await get_silence(conn, silence_id)
    district = row["matchers"].get("district") if row else None
    if row is None or (key.districts is not None and district is not None
                       and district not in key.districts):
        raise ApiError(404, "not_found", f"no silence {silence_id}")
    return Silence(**row)


@router.delete("/silences/{silence_id}", status_code=204, response_class=Response,
               responses=error_responses(401, 403, 404), summary="Delete a silence")
async def silences_delete(service: ServiceDep, key: OperatorKey, silence_id: int) -> Response:
    async with service.api_pool.acquire() as conn:
        if not await delete_silence(conn, silence_id):
            raise ApiError(404, "not_found", f"no silence {silence_id}")
    return Response(status_code=204)
