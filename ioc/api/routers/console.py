"""The operator console: the single page at ``/``, its assets under ``/static``, and ``GET /me``.

The page is plain HTML, CSS and ES modules shipped in the package (``ioc/static``); the chart
library is copied into ``ioc/static/vendor`` by ``make setup`` from the npm lock file. ``/me``
tells the page which role and districts the key it logged in with has, so that it offers only
what that key may do (the API still refuses the rest), and the storm window it groups by.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from ioc.api.deps import CurrentKey, SettingsDep
from ioc.api.errors import error_responses

STATIC = Path(__file__).resolve().parents[2] / "static"

router = APIRouter(tags=["console"])


class Me(BaseModel):
    """The caller's API key as the console needs it."""

    role: str = Field(description="admin, operator, agency or ingest.")
    name: str | None
    districts: list[str] | None = Field(description="Districts the key may read; null: all.")
    storm_window_s: float = Field(
        description="IOC_STORM_WINDOW: the console shows a storm — alerts of one rule and "
        "district, each starting within this long of the previous — as one row.")


@router.get("/me", response_model=Me, responses=error_responses(401),
            summary="The role and districts of the calling API key")
async def me(key: CurrentKey, settings: SettingsDep) -> Me:
    return Me(role=key.role, name=key.name,
              districts=list(key.districts) if key.districts is not None else None,
              storm_window_s=settings.storm_window)


async def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI, api_prefix: str) -> None:
    """Serve the console at ``/`` and its assets at ``/static``; ``/me`` under the API prefix."""
    app.include_router(router, prefix=api_prefix)
    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
