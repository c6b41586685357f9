"""GET /api/v1/events (pages, CSV and NDJSON exports) and GET /api/v1/events/aggregate.

Pages are ordered newest first by default (``order=asc`` for oldest first) on the keyset
(ts, device_id, event_id): the opaque cursor holds the last key shown and the next page
continues strictly after it, so events arriving meanwhile never shift a page and no stored
row is skipped or shown twice. Exports stream the whole filtered range from a server-side
cursor, without a page limit.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.types import Send

from ioc.api.deps import ReaderKey, ServiceDep
from ioc.api.errors import ApiError, error_responses
from ioc.api.params import (
    EARLIEST,
    ListParam,
    Since,
    Until,
    Zone,
    check_range,
    day_before,
    decode_cursor,
    encode_cursor,
)
from ioc.api.scoping import check_devices, scoped_districts, split_values
from ioc.storage import history
from ioc.storage.history import AGGS, BUCKETS, AggregateQuery, EventFilter, EventKey
from ioc.storage.keys import ApiKey

if TYPE_CHECKING:
    from ioc.service import Service

router = APIRouter(tags=["events"])

MAX_PAGE = 10_000
MAX_AGGREGATE_ROWS = 100_000
CSV_TYPE = "text/csv"
_AGG = "|".join(AGGS)
NDJSON_TYPE = "application/x-ndjson"


# ---- models ------------------------------------------------------------------------------

class Event(BaseModel):
    event_id: str
    device_id: str
    kind: str
    ts: str = Field(description="RFC 3339 in the requested time zone.")
    value: float
    unit: str | None
    attrs: dict[str, Any] | None


class EventPage(BaseModel):
    items: list[Event]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last.")


class AggregateRow(BaseModel):
    """One bucket of one device (group=device) or district (group=district) and kind."""

    bucket: str = Field(description="Bucket start, RFC 3339 in the requested time zone.")
    device_id: str | None = None
    district: str | None = None
    kind: str
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    sum: float | None = None
    count: int | None = None
    last: float | None = None


class AggregatePage(BaseModel):
    items: list[AggregateRow]
    next_cursor: str | None = Field(None, description="Always null: aggregates come in one answer.")


# ---- filters -----------------------------------------------------------------------------

async def event_filter(
    device_id: ListParam = None,
    kind: ListParam = None,
    district: ListParam = None,
    start: Since = None,
    end: Until = None,
) -> EventFilter:
    check_range(start, end)
    return EventFilter(device_ids=split_values(device_id), kinds=split_values(kind),
                       districts=split_values(district), start=start, end=end)


async def _scoped(service: Service, key: ApiKey, f: EventFilter) -> EventFilter:
    districts = scoped_districts(key, f.districts)
    if key.districts is not None and f.device_ids:
        async with service.api_pool.acquire() as conn:
            await check_devices(conn, key, f.device_ids)
    return EventFilter(f.device_ids, f.kinds, districts, f.start, f.end)


Filter = Annotated[EventFilter, Depends(event_filter)]


# ---- events ------------------------------------------------------------------------------

class _Export(StreamingResponse):
    """Closes the row generator (and so returns its connection) even when the client leaves."""

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


async def _csv(rows: AsyncIterator[list[Any]]) -> AsyncIterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(history.CSV_HEADER)
    async for chunk in rows:
        writer.writerows(chunk)
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


async def _ndjson(rows: AsyncIterator[list[Any]]) -> AsyncIterator[bytes]:
    async for chunk in rows:
        yield ("\n".join(chunk) + "\n").encode()


@router.get(
    "/events",
    response_model=EventPage,
    responses={
        200: {"content": {CSV_TYPE: {"schema": {"type": "string"}},
                          NDJSON_TYPE: {"schema": {"type": "string"}}},
              "description": "A page (JSON), or with `format=csv|ndjson` (or that Accept "
                             "type) the whole filtered range streamed."},
        **error_responses(401, 403, 422),
    },
    summary="Event history: filtered pages with a keyset cursor, or a streamed CSV/NDJSON export",
)
async def list_events(
    request: Request,
    service: ServiceDep,
    key: ReaderKey,
    f: Filter,
    tz: Zone,
    order: Annotated[Literal["desc", "asc"], Query(
        description="desc: newest first (default); asc: oldest first.")] = "desc",
    cursor: Annotated[str | None, Query(max_length=1000,
                                        description="`next_cursor` of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    format: Annotated[Literal["json", "csv", "ndjson"] | None, Query(
        description="csv or ndjson streams every matching event (no page limit); default "
                    "from the Accept header, else json.")] = None,
) -> Response:
    fmt = format or _negotiate(request.headers.get("accept", ""))
    f = await _scoped(service, key, f)
    if fmt != "json":
        rows = history.stream_events(service.api_pool, f, order=order, tz=tz, fmt=fmt)
        if fmt == "csv":
            return _Export(_csv(rows), media_type=f"{CSV_TYPE}; charset=utf-8",
                           headers={"Content-Disposition": 'attachment; filename="events.csv"'})
        return _Export(_ndjson(rows), media_type=NDJSON_TYPE)
    after = _after(cursor, order) if cursor else None
    async with service.api_pool.acquire() as conn:
        items, last = await history.event_page(conn, f, order=order, after=after, limit=limit, tz=tz)
    next_cursor = None
    if last is not None:
        next_cursor = encode_cursor([order, history.epoch_us(last.ts), last.device_id,
                                     last.event_id])
    body = b'{"items":[' + ",".join(items).encode() + b'],"next_cursor":' \
        + msgspec.json.encode(next_cursor) + b"}"
    return Response(body, media_type="application/json")


def _negotiate(accept: str) -> Literal["json", "csv", "ndjson"]:
    accept = accept.lower()
    if CSV_TYPE in accept:
        return "csv"
    if NDJSON_TYPE in accept:
        return "ndjson"
    return "json"


def _after(cursor: str, order: str) -> EventKey:
    value = decode_cursor(cursor)
    if not (isinstance(value, list) and len(value) == 4 and value[0] in ("asc", "desc")
            and isinstance(value[1], int)
            and all(isinstance(v, str) and "\x00" not in v for v in value[2:])):
        raise ApiError(422, "invalid", "malformed cursor")
    if value[0] != order:
        raise ApiError(422, "invalid", f"this cursor continues an order={value[0]} listing")
    try:
        ts = history.from_epoch_us(value[1])
    except OverflowError:
        raise ApiError(422, "invalid", "malformed cursor") from None
    return EventKey(ts, value[2], value[3])


# ---- aggregates --------------------------------------------------------------------------

def _bucket_start(t: dt.datetime, width_s: int) -> dt.datetime:
    """The start of ``t``'s bucket, or year 1's first instant if that is earlier."""
    offset = (t - history.BUCKET_ORIGIN) % dt.timedelta(seconds=width_s)
    return t - offset if t - EARLIEST >= offset else EARLIEST


@router.get(
    "/events/aggregate",
    response_model=AggregatePage,
    responses={
        200: {"headers": {"X-Aggregate-Source": {
            "description": "events_1m / events_1h (TimescaleDB rollups) or events (raw)",
            "schema": {"type": "string"}}}},
        **error_responses(401, 403, 422),
    },
    summary="Time-bucketed aggregates per device or district and kind",
    description="Buckets start at multiples of the bucket width from midnight Asia/Ho_Chi_Minh "
    "(UTC+7): 1d is a Vietnamese calendar day. Without `from`, the last 24 hours (from a "
    "bucket boundary). `avg` is sum/count. On TimescaleDB the 1-minute/1-hour continuous "
    "aggregates answer when the range ends fall on their boundaries and nothing in the range "
    "awaits materialization; otherwise (and for `last`, and on plain PostgreSQL) the raw "
    "events do, with the same numbers.",
)
async def aggregate_events(
    service: ServiceDep,
    key: ReaderKey,
    f: Filter,
    tz: Zone,
    bucket: Annotated[Literal["1m", "5m", "15m", "30m", "1h", "6h", "12h", "1d"], Query()] = "5m",
    agg: Annotated[str, Query(
        description="Comma list of avg, min, max, sum, count, last.", max_length=100,
        pattern=f"^({_AGG})(,({_AGG}))*$", examples=["avg,min,max,count"])] = "avg,min,max,count",
    group: Annotated[Literal["device", "district"], Query()] = "device",
) -> Response:
    aggs = tuple(dict.fromkeys(agg.split(",")))
    f = await _scoped(service, key, f)
    if f.start is None:
        start = _bucket_start(day_before(f.end or dt.datetime.now(dt.UTC)), BUCKETS[bucket])
        f = EventFilter(f.device_ids, f.kinds, f.districts, start, f.end)
    q = AggregateQuery(bucket=bucket, aggs=aggs, group=group, filter=f)
    try:
        async with service.api_pool.acquire() as conn:
            rows, source = await history.aggregate(conn, q, flavour=service.flavour, tz=tz,
                                                   max_rows=MAX_AGGREGATE_ROWS)
    except history.TooManyRows as exc:
        raise ApiError(422, "invalid", str(exc)) from None
    return Response(msgspec.json.encode({"items": rows, "next_cursor": None}),
                    media_type="application/json", headers={"X-Aggregate-Source": source})
