"""The alert as the API, the live feed and notifications show it (docs/contract/http-api.md).

Rows may come from the writer's connections (timestamptz as int microseconds, see
``storage/pool.py``) or the API's (datetime), so conversion accepts both.
"""

from __future__ import annotations

import datetime as dt
import functools
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
# Since 1975-06-13 the zone is a fixed +07:00: times after it are formatted by arithmetic on
# their microseconds, each second's text made once (a storm's alerts share their seconds),
# without a zone lookup or a datetime per time, since a storm formats four per alert change.
# The zone's rules format the rest, and are what a test holds this to.
_FIXED_SINCE_US = 171_820_800_000_000  # 1975-06-12T16:00:00Z
_OFFSET_S = 7 * 3600


@functools.lru_cache(maxsize=4096)
def _local_second(second: int) -> str:
    """"YYYY-MM-DDTHH:MM:SS" in +07:00 of the Unix ``second``."""
    day, s = divmod(second + _OFFSET_S, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{(dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()}T{h:02d}:{m:02d}:{s:02d}"


def iso(value: int | dt.datetime | None) -> str | None:
    """RFC 3339 with the +07:00 offset from a datetime or Unix microseconds (as
    ``datetime.isoformat``: no fraction when the microseconds are 0)."""
    if value is None:
        return None
    if isinstance(value, int):
        if value >= _FIXED_SINCE_US:
            second, us = divmod(value, 1_000_000)
            if us:
                return f"{_local_second(second)}.{us:06d}+07:00"
            return _local_second(second) + "+07:00"
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
