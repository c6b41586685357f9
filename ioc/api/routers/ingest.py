"""POST /api/v1/ingest: any payload form of docs/contract/input.md, answered after commit."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ioc.api.deps import IngestKey, ServiceDep
from ioc.api.errors import ApiError, error_responses
from ioc.ingest.pipeline import PipelineClosed
from ioc.model import RawMessage

router = APIRouter(tags=["ingest"])


class Rejection(BaseModel):
    reason: str
    detail: str | None


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[Rejection]


@router.post(
    "/ingest",
    response_model=IngestResult,
    responses=error_responses(401, 403, 413, 422, 503),
    summary="Store events (one object, an array, or the multi-reading form)",
    description="Answers after the events are committed. Events that cannot be stored are "
    "kept as dead letters and listed under `rejected`; if nothing was accepted the answer is 422. "
    "When the events are not committed within IOC_INGEST_TIMEOUT the answer is 503 with "
    "Retry-After: they may still be stored, and sending them again stores nothing twice.",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]},
        "example": {"device_id": "hg-vt-wl-001", "kind": "water_level",
                    "ts": "2026-11-23T07:00:00+07:00", "value": 1.82, "unit": "m"}}}}},
)
async def ingest(request: Request, service: ServiceDep, key: IngestKey) -> JSONResponse:
    limit = service.settings.max_payload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"body over {limit} bytes")
    timeout = service.settings.ingest_timeout
    try:
        result = await service.pipeline.submit_and_wait([RawMessage(bytes(body), "http")],
                                                        timeout)
    except PipelineClosed as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    except TimeoutError:
        raise ApiError(
            503, "timeout", f"not committed within {timeout:g} s (the database is slow or "
            "down); the events may still be stored: send them again later, nothing is stored "
            "twice", headers={"Retry-After": str(math.ceil(min(timeout, 60)))}) from None
    out = IngestResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        rejected=[Rejection(reason=d.reason, detail=d.detail) for d in result.rejected],
    )
    if result.rejected and not (result.accepted or result.duplicates):
        return JSONResponse({"error": "invalid", "detail": out.model_dump()}, status_code=422)
    return JSONResponse(out.model_dump())
