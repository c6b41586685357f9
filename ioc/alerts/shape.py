"""The alert as the API, the live feed and notifications show it (docs/contract/http-api.md).

Rows may come from the writer's connections (timestamptz as int microseconds, see
``storage/pool.py``) or the API's (datetime), so conversion accepts both.
"""

from __future__ import annotations

import datetime as dt
import math
import unicodedata
import zoneinfo
from collections.abc import Mapping
from typing import Any

from ioc.storage.alerts import ALERT_FIELDS

SEVERITIES = ("info", "warning", "critical")
STATES = ("firing", "acknowledged", "resolved")
_TIME_FIELDS = ("started_at", "last_seen_at", "acknowledged_at", "resolved_at")
# The province's time, as the events API shows by default (+07:00, no daylight saving).
LOCAL_TZ = zoneinfo.ZoneInfo("Asia/Ho_Chi_Minh")
# Since 1975-06-13 the zone is a fixed +07:00: a fixed offset formats times after it the same,
# without a zone lookup per time (a storm formats four per alert change).
_FIXED = dt.timezone(dt.timedelta(hours=7))
_FIXED_SINCE_US = 171_820_800_000_000  # 1975-06-12T16:00:00Z
_EPOCH_LOCAL = dt.datetime(1970, 1, 1, 7, tzinfo=_FIXED)


def iso(value: int | dt.datetime | None) -> str | None:
    """RFC 3339 with the +07:00 offset from a datetime or Unix microseconds."""
    if value is None:
        return None
    if isinstance(value, int):
        if value >= _FIXED_SINCE_US:
            return (_EPOCH_LOCAL + dt.timedelta(microseconds=value)).isoformat()
        value = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=value)
    return value.astimezone(LOCAL_TZ).isoformat()


def alert_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row selected with ``storage.alerts.ALERT_COLUMNS`` as the alert JSON object."""
    out = {k: row[k] for k in ALERT_FIELDS}
    for k in _TIME_FIELDS:
        out[k] = iso(out[k])
    value = out["value"]
    if value is not None and not math.isfinite(value):
        out["value"] = None
    return out


def district_slug(district: str | None) -> str:
    """ASCII topic segment for a district: "Vị Thanh" -> "vi-thanh"; none -> "unknown"."""
    if not district:
        return "unknown"
    text = district.replace("Đ", "D").replace("đ", "d")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = "-".join("".join(c if c.isalnum() else " " for c in ascii_text.lower()).split())
    return slug or "unknown"
