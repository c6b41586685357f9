"""Liveness, readiness and Prometheus metrics: no key needed, for orchestrators and scrapers."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from ioc.api.deps import ServiceDep
from ioc.api.errors import error_responses

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str]


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=error_responses(503),
            summary="The database answers and every enabled source is connected and subscribed")
async def readyz(service: ServiceDep, response: Response) -> Readiness:
    checks = await service.readiness()
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = 503
    return Readiness(ready=ready, checks=checks)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {}}}})
async def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(),
                    media_type="text/plain; version=0.0.4; charset=utf-8")
