"""The FastAPI application: the service starts in the lifespan, routers mount under /api/v1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI

from ioc.api import errors
from ioc.api.routers import alerts, console, dead_letters, devices, events, health, ingest, rules, silences
from ioc.settings import Settings

if TYPE_CHECKING:
    from ioc.service import Service

API_PREFIX = "/api/v1"


def create_app(settings: Settings, service: Service | None = None) -> FastAPI:
    """The app; with ``service`` given (``ioc run``) its owner starts and stops it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            yield
            return
        from ioc.service import Service

        own = app.state.service = Service(settings)
        await own.start()
        try:
            yield
        finally:
            await own.stop()

    app = FastAPI(
        title="ioc-ingest",
        summary="Events, alerts and history for the Intelligent Operations Centre",
        version="0.1.0",
        lifespan=lifespan,
    )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(health.router, prefix=API_PREFIX, include_in_schema=False)
    app.include_router(ingest.router, prefix=API_PREFIX)
    app.include_router(rules.router, prefix=API_PREFIX)
    app.include_router(events.router, prefix=API_PREFIX)
    app.include_router(devices.router, prefix=API_PREFIX)
    app.include_router(dead_letters.router, prefix=API_PREFIX)
    app.include_router(alerts.router, prefix=API_PREFIX)
    app.include_router(silences.router, prefix=API_PREFIX)
    console.install(app, API_PREFIX)
    return app
