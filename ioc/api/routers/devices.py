"""GET /api/v1/devices, /devices/{id} and /devices/{id}/completeness.

A device is online when its latest event is at most twice its expected interval old; a
device without an expected interval is online when seen within the last 15 minutes.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ioc.api import params
from ioc.api.deps import ReaderKey, ServiceDep
from ioc.api.errors import ApiError, error_responses
from ioc.api.scoping import plain_text, scoped_districts, split_values
from ioc.storage import history
from ioc.storage.history import DeviceFilter
from ioc.storage.keys import ApiKey

if TYPE_CHECKING:
    from ioc.service import Service

router = APIRouter(tags=["devices"])

MAX_PAGE = 10_000
DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:-]{1,128}$",
                                description="Device id, e.g. hg-vt-wl-001.")]


class LastValue(BaseModel):
    value: float
    ts: str


class Device(BaseModel):
    id: str
    name: str | None
    kind: str | None = Field(description="Main kind (the one completeness counts).")
    district: str | None
    ward: str | None
    lat: float | None
    lon: float | None
    interval: float | None = Field(description="Expected reporting interval in seconds; null "
                                               "when unknown.")
    tags: list[str]
    last_seen: str | None = Field(description="ts of the device's latest event (RFC 3339).")
    online: bool = Field(description="Seen within 2x the interval (15 min when unknown).")
    last_values: dict[str, LastValue] = Field(
        description="Per kind sent in the 24 h up to `last_seen`: the latest value and its ts.")


class DevicePage(BaseModel):
    items: list[Device]
    next_cursor: str | None


class Gap(BaseModel):
    from_: str = Field(alias="from")
    to: str
    seconds: float


class Completeness(BaseModel):
    device_id: str
    kind: str
    from_: str = Field(alias="from")
    to: str
    interval: float = Field(description="Expected interval in seconds.")
    expected: int = Field(description="Whole intervals in the range.")
    received: int = Field(description="Distinct timestamps of `kind` in the range.")
    ratio: float | None = Field(description="received / expected, at most 1; null when "
                                            "nothing is expected.")
    gaps: list[Gap] = Field(description="Stretches longer than 2x the interval without a "
                                        "reading, including from `from` and up to `to`.")


def _device(r: Any) -> dict[str, Any]:
    return {
        "id": r["id"], "name": r["name"], "kind": r["kind"], "district": r["district"],
        "ward": r["ward"], "lat": r["lat"], "lon": r["lon"], "interval": r["interval_s"],
        "tags": list(r["tags"]), "last_seen": r["last_seen"], "online": r["online"],
        "last_values": msgspec.json.decode(r["last_values"]) if r["last_values"] else {},
    }


def _json(value: Any) -> Response:
    return Response(msgspec.json.encode(value), media_type="application/json")


@router.get("/devices", response_model=DevicePage, responses=error_responses(401, 403, 422),
            summary="Registered and auto-registered devices with last values and online state")
async def list_devices(
    service: ServiceDep,
    key: ReaderKey,
    tz: params.Zone,
    district: params.ListParam = None,
    kind: Annotated[str | None, Query(max_length=64, description="Main kind.")] = None,
    tag: params.ListParam = None,
    online: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
) -> Response:
    after = None
    if cursor:
        after = params.decode_cursor(cursor)
        if not isinstance(after, str) or "\x00" in after:
            raise ApiError(422, "invalid", "malformed cursor")
    f = DeviceFilter(districts=scoped_districts(key, split_values(district)), kind=plain_text(kind),
                     tags=split_values(tag), online=online)
    async with service.api_pool.acquire() as conn:
        rows = await history.devices(conn, f, after=after, limit=limit + 1, tz=tz)
    more = len(rows) > limit
    items = [_device(r) for r in rows[:limit]]
    return _json({"items": items, "next_cursor": params.encode_cursor(items[-1]["id"]) if more else None})


async def _one(service: Service, key: ApiKey, device_id: str, tz: str) -> dict[str, Any]:
    async with service.api_pool.acquire() as conn:
        rows = await history.devices(conn, DeviceFilter(ids=(device_id,)), after=None, limit=1,
                                     tz=tz)
    if not rows:
        raise ApiError(404, "not_found", f"no device {device_id!r}")
    if key.districts is not None and rows[0]["district"] not in key.districts:
        raise ApiError(403, "forbidden", f"this key may not read device {device_id!r}")
    return _device(rows[0])


@router.get("/devices/{device_id}", response_model=Device,
            responses=error_responses(401, 403, 404, 422),
            summary="One device with its last values and online state")
async def get_device(service: ServiceDep, key: ReaderKey, device_id: DeviceId, tz: params.Zone) -> Response:
    return _json(await _one(service, key, device_id, tz))


@router.get("/devices/{device_id}/completeness", response_model=Completeness,
            responses=error_responses(401, 403, 404, 422),
            summary="Expected vs received readings and the gaps, for the device's main kind",
            description="Without `from`, the 24 hours before `to`; `to` defaults to now and is "
            "never later than now (no reading is expected from the future). 422 when the device "
            "has no expected interval.")
async def get_completeness(
    service: ServiceDep,
    key: ReaderKey,
    device_id: DeviceId,
    tz: params.Zone,
    start: params.Since = None,
    end: params.Until = None,
    kind: Annotated[str | None, Query(max_length=64,
                                      description="Kind to count (default: main kind).")] = None,
) -> Response:
    device = await _one(service, key, device_id, tz)
    if not device["interval"]:
        raise ApiError(422, "invalid", f"device {device_id!r} has no expected interval")
    count_kind = plain_text(kind) or device["kind"]
    if not count_kind:
        raise ApiError(422, "invalid", f"device {device_id!r} has no main kind: pass `kind`")
    now = dt.datetime.now(dt.UTC)
    end = min(end, now) if end is not None else now
    start = start if start is not None else params.day_before(end)
    params.check_range(start, end)
    interval = dt.timedelta(seconds=device["interval"])
    async with service.api_pool.acquire() as conn:
        row = await history.completeness(conn, device_id, count_kind, start, end, interval, tz)
    expected = int((end - start) / interval)
    received = int(row["received"])
    return _json({
        "device_id": device_id, "kind": count_kind,
        "from": row["range_from"], "to": row["range_to"],
        "interval": device["interval"], "expected": expected, "received": received,
        "ratio": min(1.0, received / expected) if expected else None,
        "gaps": msgspec.json.decode(row["gaps"]),
    })
