"""GET /api/v1/dead-letters and POST /api/v1/dead-letters/{id}/replay (admin and operator).

Dead letters hold raw input of any district, so agency keys cannot read them. A replay
decodes the raw bytes again with the service's current limits: when that gives events and
no rejection, they go through the pipeline (stored and seen by the rules like live input)
and the dead letter is then marked replayed; a second replay is a 409. No row lock or pool
connection is held while the pipeline works: two replays racing store the events once (the
writer is idempotent) and only one of them marks the dead letter.
"""

from __future__ import annotations

import base64
import zoneinfo
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ioc.api.deps import OperatorKey, ServiceDep
from ioc.api.errors import ApiError, error_responses
from ioc.api.params import ListParam, Since, Until, Zone, check_range, decode_cursor, encode_cursor
from ioc.api.scoping import split_values
from ioc.ingest.decode import decode
from ioc.ingest.pipeline import PipelineClosed
from ioc.model import RawMessage
from ioc.storage import dead_letters
from ioc.storage.dead_letters import DeadLetterFilter

router = APIRouter(tags=["dead letters"])

MAX_PAGE = 1000
PREVIEW_CHARS = 200
DeadLetterId = Annotated[int, Path(ge=1, le=2**63 - 1)]


class DeadLetter(BaseModel):
    id: int
    received_at: str
    source: str
    topic: str | None
    partition: int | None
    offset: int | None
    reason: str
    detail: str | None
    raw: str = Field(description="The raw bytes, base64.")
    raw_size: int
    preview: str = Field(description=f"The first {PREVIEW_CHARS} characters of the raw bytes "
                                     "as UTF-8 (invalid bytes replaced).")
    replayed_at: str | None
    replayed_by: str | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetter]
    next_cursor: str | None


class Rejection(BaseModel):
    reason: str
    detail: str | None


class ReplayResult(BaseModel):
    id: int
    accepted: int = Field(description="Events newly stored.")
    duplicates: int = Field(description="Events that were already stored.")
    replayed_at: str
    replayed_by: str


def _show(zone: zoneinfo.ZoneInfo, value: Any) -> str | None:
    return value.astimezone(zone).isoformat() if value is not None else None


def _item(r: Any, zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
    raw = bytes(r["raw"])
    return {
        "id": r["id"], "received_at": _show(zone, r["received_at"]), "source": r["source"],
        "topic": r["topic"], "partition": r["partition"], "offset": r["offset"],
        "reason": r["reason"], "detail": r["detail"],
        "raw": base64.b64encode(raw).decode(), "raw_size": len(raw),
        "preview": raw[: PREVIEW_CHARS * 4].decode("utf-8", "replace")[:PREVIEW_CHARS],
        "replayed_at": _show(zone, r["replayed_at"]), "replayed_by": r["replayed_by"],
    }


def _replayed(dead_letter_id: int, row: Any) -> ApiError:
    return ApiError(409, "conflict", f"dead letter {dead_letter_id} was replayed at "
                    f"{row['replayed_at'].isoformat()} by {row['replayed_by']}")


@router.get("/dead-letters", response_model=DeadLetterPage,
            responses=error_responses(401, 403, 422),
            summary="Input that could not be stored, newest first")
async def list_dead_letters(
    service: ServiceDep,
    key: OperatorKey,
    tz: Zone,
    reason: ListParam = None,
    source: ListParam = None,
    start: Since = None,
    end: Until = None,
    replayed: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Response:
    check_range(start, end)
    before = None
    if cursor:
        before = decode_cursor(cursor)
        if not isinstance(before, int) or not 1 <= before < 2**63:
            raise ApiError(422, "invalid", "malformed cursor")
    f = DeadLetterFilter(reasons=split_values(reason), sources=split_values(source),
                         start=start, end=end, replayed=replayed)
    async with service.api_pool.acquire() as conn:
        rows, last = await dead_letters.page(conn, f, before_id=before, limit=limit)
    zone = zoneinfo.ZoneInfo(tz)
    return Response(msgspec.json.encode({
        "items": [_item(r, zone) for r in rows],
        "next_cursor": encode_cursor(last) if last is not None else None,
    }), media_type="application/json")


@router.post("/dead-letters/{dead_letter_id}/replay", response_model=ReplayResult,
             responses=error_responses(401, 403, 404, 409, 422, 503),
             summary="Decode a dead letter again and store its events if it now passes",
             description="422 (with the reasons) when the raw bytes still do not decode to "
             "events with the current limits; 409 when already replayed.")
async def replay_dead_letter(service: ServiceDep, key: OperatorKey, dead_letter_id: DeadLetterId,
                             tz: Zone) -> Response:
    actor = key.name or f"key-{key.id}"
    async with service.api_pool.acquire() as conn:
        row = await dead_letters.get(conn, dead_letter_id)
    if row is None:
        raise ApiError(404, "not_found", f"no dead letter {dead_letter_id}")
    if row["replayed_at"] is not None:
        raise _replayed(dead_letter_id, row)
    message = RawMessage(bytes(row["raw"]), row["source"], row["topic"], row["partition"],
                         row["offset"])
    decoded = decode([message], service.pipeline.limits)
    if decoded.dead or not len(decoded.events):
        raise ApiError(422, "invalid", {"rejected": [
            {"reason": d.reason, "detail": d.detail} for d in decoded.dead]})
    timeout = service.settings.ingest_timeout
    try:
        result = await service.pipeline.submit_and_wait([message], timeout)
    except PipelineClosed as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    except TimeoutError:
        raise ApiError(503, "timeout", f"not committed within {timeout:g} s; the events may "
                       "still be stored: replay again later", headers={"Retry-After": "30"},
                       ) from None
    if result.rejected:
        raise ApiError(422, "invalid", {"rejected": [
            {"reason": d.reason, "detail": d.detail} for d in result.rejected]})
    async with service.api_pool.acquire() as conn:
        marked = await dead_letters.mark_replayed(conn, dead_letter_id, actor)
        if marked is None:
            raise _replayed(dead_letter_id, await dead_letters.get(conn, dead_letter_id))
    return Response(msgspec.json.encode({
        "id": dead_letter_id, "accepted": result.accepted, "duplicates": result.duplicates,
        "replayed_at": _show(zoneinfo.ZoneInfo(tz), marked["replayed_at"]),
        "replayed_by": marked["replayed_by"],
    }), media_type="application/json")
