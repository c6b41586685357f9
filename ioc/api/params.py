"""Query parameters, cursors and field types that several routers share.

They live here, not in one of the routers, so that no router imports another: each router
reads as one resource, and the time-range rules (``from``/``to`` bounds, the default window)
are the same for events, devices and dead letters because they are written once.
"""

from __future__ import annotations

import base64
import datetime as dt
import zoneinfo
from functools import lru_cache
from typing import Annotated, Any

import msgspec
from fastapi import Depends, Query
from pydantic import AwareDatetime, Field

from ioc.api.errors import ApiError

DEFAULT_TZ = "Asia/Ho_Chi_Minh"

# An RFC 3339 timestamp in a response model (shown as a string with its offset).
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone(tz: Annotated[str, Query(
    description="IANA time zone in which timestamps are shown (RFC 3339 with its offset).",
    examples=["Asia/Ho_Chi_Minh", "UTC"], max_length=64)] = DEFAULT_TZ) -> str:
    if tz != "UTC" and tz not in _zones():
        raise ApiError(422, "invalid", f"unknown time zone {tz!r}")
    return tz


Zone = Annotated[str, Depends(zone)]
Since = Annotated[AwareDatetime | None, Query(
    alias="from", description="Inclusive start, RFC 3339 with offset (years 1-9999).")]
Until = Annotated[AwareDatetime | None, Query(
    alias="to", description="Exclusive end, RFC 3339 with offset (years 1-9999).")]
ListParam = Annotated[list[str] | None, Query(
    description="Repeat the parameter or give a comma-separated list.")]


# The instants `from` and `to` may name: a day inside what a datetime holds, so that time
# zones and default windows cannot overflow, and never datetime.min or max, which asyncpg
# sends as -infinity and infinity.
EARLIEST = dt.datetime(1, 1, 2, tzinfo=dt.UTC)
LATEST = dt.datetime(9999, 12, 30, tzinfo=dt.UTC)


def day_before(end: dt.datetime) -> dt.datetime:
    """The default ``from``: 24 hours before ``end``, but not before EARLIEST."""
    return end - min(dt.timedelta(days=1), end - EARLIEST)


def check_range(start: dt.datetime | None, end: dt.datetime | None) -> None:
    for name, t in (("from", start), ("to", end)):
        if t is not None and not EARLIEST <= t <= LATEST:
            raise ApiError(422, "invalid", f"`{name}` must lie between {EARLIEST:%Y-%m-%d} and "
                           f"{LATEST:%Y-%m-%d} (UTC)")
    if start is not None and end is not None and end <= start:
        raise ApiError(422, "invalid", "`to` must be after `from`")


def encode_cursor(value: Any) -> str:
    """An opaque cursor: the JSON of the last key shown, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, msgspec.DecodeError):
        raise ApiError(422, "invalid", "malformed cursor") from None
