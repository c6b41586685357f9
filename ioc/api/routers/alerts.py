"""Alerts: list and read, acknowledge and resolve by hand, and the live feed (Server-Sent Events).

An agency key limited to districts sees only alerts of those districts (never ones without a
district), and gets 403 when it names another district.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, Field

from ioc.alerts import AlertNotFound, Alerts, AlertStateConflict, FeedFilter
from ioc.alerts.queries import get_alert, list_alerts
from ioc.api.deps import OperatorKey, ReaderKey, ServiceDep, actor
from ioc.api.errors import ApiError, error_responses
from ioc.api.params import Timestamp
from ioc.storage.alerts import AlertFilter
from ioc.storage.keys import ApiKey

router = APIRouter(tags=["alerts"])

Severity = Literal["info", "warning", "critical"]
MAX_GROUP = 20_000  # ids in one group acknowledgement


class Alert(BaseModel):
    """One alert: at most one open (firing or acknowledged) per rule and device."""

    id: int
    rule_id: str
    device_id: str
    district: str | None
    kind: str | None
    severity: Severity
    state: Literal["firing", "acknowledged", "resolved"]
    message: str
    value: float | None = Field(description="The reading that fired it (null for absence).")
    count: int = Field(description="Fires while open: 1 plus the repeats.")
    started_at: Timestamp = Field(description="ts of the firing event.")
    last_seen_at: Timestamp
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None
    resolved_at: Timestamp | None = Field(
        description="ts of the clearing event, or when it was resolved by hand.")
    resolved_by: str | None = Field(description='"system" on clear, else the API key.')
    silenced: bool = Field(description="A silence matched when it fired: not notified.")


class AuditEntry(BaseModel):
    action: Literal["firing", "acknowledged", "resolved"]
    actor: str
    note: str | None
    at: Timestamp


class AlertDetail(Alert):
    audit: list[AuditEntry] = Field(description="Every change of state, oldest first.")


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class NoteBody(BaseModel):
    note: str | None = Field(None, max_length=2000)


def get_alerts(service: ServiceDep) -> Alerts:
    alerts = getattr(service, "alerts", None)
    if alerts is None:
        raise ApiError(503, "unavailable", "alerts are not running on this instance")
    return alerts


AlertsDep = Annotated[Alerts, Depends(get_alerts)]


def scope(key: ApiKey, district: str | None) -> list[str] | None:
    """The districts a key may read (None: all); 403 when it asks for another one."""
    if key.districts is None:
        return None
    if district is not None and district not in key.districts:
        raise ApiError(403, "forbidden", f"this key may not read district {district!r}")
    return list(key.districts)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit():
        raise ApiError(400, "bad_request", "invalid cursor")
    return int(cursor)


@router.get("/alerts", response_model=AlertPage, responses=error_responses(400, 401, 403, 422),
            summary="Alerts, newest first, with filters and a keyset cursor")
async def alerts_list(
    service: ServiceDep, key: ReaderKey,
    state: Annotated[Literal["firing", "acknowledged", "resolved", "open"] | None,
                     Query(description="Default: every state. open = firing or acknowledged.")] = None,
    severity: Severity | None = None,
    district: str | None = None,
    rule_id: str | None = None,
    device_id: str | None = None,
    start: Annotated[AwareDatetime | None,
                     Query(alias="from", description="started_at >= from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to", description="started_at < to")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AlertPage:
    districts = scope(key, district)
    async with service.api_pool.acquire() as conn:
        f = AlertFilter(state=state, severity=severity, district=district, rule_id=rule_id,
                        device_id=device_id, start=start, end=end, districts=districts)
        items = await list_alerts(conn, f, before_id=_cursor(cursor), limit=limit)
    next_cursor = str(items[-1]["id"]) if len(items) == limit else None
    return AlertPage(items=[Alert(**a) for a in items], next_cursor=next_cursor)


@router.get(
    "/alerts/stream", response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}},
                     "description": "Every alert change as `id: <feed id>` and `data: <alert "
                     "JSON with change = fired|repeated|acknowledged|resolved>`; a `: keepalive` "
                     "comment every 15 s."},
               **error_responses(400, 401, 403, 422, 503)},
    summary="Live alert changes (Server-Sent Events), resumable with Last-Event-ID",
    description="Reconnect with the `Last-Event-ID` header (browsers send it by themselves) or "
    "`?last_event_id=` to receive exactly the changes missed, in order; the header wins when "
    "both are given. Without either, the stream starts with the next change. A client that "
    "falls 1000 changes behind is disconnected and resumes the same way.",
)
async def alerts_stream(
    key: ReaderKey, alerts: AlertsDep,
    district: str | None = None,
    severity: Severity | None = None,
    last_event_id: Annotated[int | None, Query(ge=0)] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    districts = scope(key, district)
    if last_event_id_header:
        if not last_event_id_header.strip().isdigit():
            raise ApiError(400, "bad_request", "Last-Event-ID must be a feed id (an integer)")
        last_event_id = int(last_event_id_header)
    wanted = {district} if district is not None else districts
    filter = FeedFilter(frozenset(wanted) if wanted is not None else None, severity)
    return StreamingResponse(alerts.stream(filter, last_event_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _visible(service: ServiceDep, key: ApiKey, alert_id: int) -> AlertDetail:
    async with service.api_pool.acquire() as conn:
        alert = await get_alert(conn, alert_id)
    if alert is None or (key.districts is not None and alert["district"] not in key.districts):
        raise ApiError(404, "not_found", f"no alert {alert_id}")
    return AlertDetail(**alert)


@router.get("/alerts/{alert_id}", response_model=AlertDetail,
            responses=error_responses(401, 403, 404), summary="One alert with its audit trail")
async def alerts_get(service: ServiceDep, key: ReaderKey, alert_id: int) -> AlertDetail:
    return await _visible(service, key, alert_id)


async def _change(service: ServiceDep, alerts: Alerts, key: ApiKey, alert_id: int, state: str,
                  body: NoteBody | None) -> Alert:
    if key.districts is not None:
        await _visible(service, key, alert_id)
    note = body.note if body else None
    try:
        if state == "acknowledged":
            alert = await alerts.ack(alert_id, actor(key), note)
        else:
            alert = await alerts.resolve(alert_id, actor(key), note)
    except AlertNotFound:
        raise ApiError(404, "not_found", f"no alert {alert_id}") from None
    except AlertStateConflict as exc:
        raise ApiError(409, "conflict", {"message": str(exc), "state": exc.state}) from None
    return Alert(**alert)


class AckGroup(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=MAX_GROUP,
                           description="The alerts to acknowledge, e.g. every alert of a storm group.")
    note: str | None = Field(None, max_length=2000)


class NotFiring(BaseModel):
    id: int
    state: Literal["acknowledged", "resolved"]


class AckGroupResult(BaseModel):
    acknowledged: list[int] = Field(description="Ids acknowledged now, each with its audit row.")
    not_firing: list[NotFiring] = Field(description="Left as they are: no longer firing.")
    not_found: list[int] = Field(description="No such alert, or one this key may not see.")


@router.post("/alerts/acknowledge", response_model=AckGroupResult,
             responses=error_responses(401, 403, 422),
             summary="Acknowledge many firing alerts at once (a storm's group)",
             description="One transaction: every listed alert that is firing becomes "
             "acknowledged, with one audit row each (this key, the note) and one live-feed "
             "change each. Alerts no longer firing are left as they are and listed.")
async def alerts_ack_group(alerts: AlertsDep, key: OperatorKey, body: AckGroup) -> AckGroupResult:
    out = await alerts.ack_many(body.ids, actor(key), body.note, key.districts)
    return AckGroupResult(
        acknowledged=out.acknowledged, not_found=out.not_found,
        not_firing=[NotFiring(id=i, state=st) for i, st in sorted(out.not_firing.items())])


@router.post("/alerts/{alert_id}/ack", response_model=Alert,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Acknowledge a firing alert",
             description="409 when the alert is not firing (already acknowledged or resolved); "
             "then nothing changes.")
async def alerts_ack(service: ServiceDep, alerts: AlertsDep, key: OperatorKey, alert_id: int,
                     body: NoteBody | None = None) -> Alert:
    return await _change(service, alerts, key, alert_id, "acknowledged", body)


@router.post("/alerts/{alert_id}/resolve", response_model=Alert,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Resolve a firing or acknowledged alert",
             description="409 when it is already resolved. The rule's next fire for the "
             "device opens a new alert.")
async def alerts_resolve(service: ServiceDep, alerts: AlertsDep, key: OperatorKey,
                         alert_id: int, body: NoteBody | None = None) -> Alert:
    return await _change(service, alerts, key, alert_id, "resolved", body)
