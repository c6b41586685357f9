"""FastAPI dependencies as ``Annotated`` aliases: the service, settings and the caller's key."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ioc.api.errors import ApiError
from ioc.settings import Settings
from ioc.storage.keys import ApiKey, find_key, touch_key

if TYPE_CHECKING:
    from ioc.service import Service

_CACHE_S = 30.0
_TOUCH_S = 60.0
_bearer = HTTPBearer(auto_error=False, description="An API key made with `ioc keys create`.")
ANONYMOUS_ADMIN = ApiKey(id=0, name="auth-off", role="admin", districts=None)


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated["Service", Depends(get_service)]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.service.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


class KeyCache:
    """Recently seen keys, so that a busy ingest client costs no database round trip per call."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiKey | None]] = {}
        self._touched: dict[int, float] = {}

    async def lookup(self, service: Service, token: str) -> ApiKey | None:
        now = time.monotonic()
        hit = self._entries.get(token)
        if hit and hit[0] > now:
            key = hit[1]
        else:
            async with service.api_pool.acquire() as conn:
                key = await find_key(conn, token)
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[token] = (now + _CACHE_S, key)
        if key is not None and self._touched.get(key.id, 0) + _TOUCH_S < now:
            self._touched[key.id] = now
            async with service.api_pool.acquire() as conn:
                await touch_key(conn, key.id)
        return key

    def clear(self) -> None:
        self._entries.clear()


async def current_key(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    if service.settings.auth == "off":
        return ANONYMOUS_ADMIN
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <api key>",
                       headers={"WWW-Authenticate": "Bearer"})
    key = await service.keys.lookup(service, credentials.credentials)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key",
                       headers={"WWW-Authenticate": "Bearer"})
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def require_role(*roles: str) -> Callable[[ApiKey], ApiKey]:
    def check(key: CurrentKey) -> ApiKey:
        if key.role not in roles:
            raise ApiError(403, "forbidden", f"role {key.role!r} may not do this")
        return key

    return check


IngestKey = Annotated[ApiKey, Depends(require_role("admin", "ingest"))]
ReaderKey = Annotated[ApiKey, Depends(require_role("admin", "operator", "agency"))]
OperatorKey = Annotated[ApiKey, Depends(require_role("admin", "operator"))]
AdminKey = Annotated[ApiKey, Depends(require_role("admin"))]
