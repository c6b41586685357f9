"""FastAPI dependencies as ``Annotated`` aliases: the service, settings and the caller's key.

Keys are looked up through the service's ``KeyCache`` (``ioc/storage/key_cache.py``), which
lives below the service so that the service need not import the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ioc.api.errors import ApiError
from ioc.settings import Settings
from ioc.storage.keys import ApiKey

if TYPE_CHECKING:
    from ioc.service import Service

_bearer = HTTPBearer(auto_error=False, description="An API key made with `ioc keys create`.")
ANONYMOUS_ADMIN = ApiKey(id=0, name="auth-off", role="admin", districts=None)


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated["Service", Depends(get_service)]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.service.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def current_key(
    service: ServiceDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    if service.settings.auth == "off":
        return ANONYMOUS_ADMIN
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <api key>",
                       headers={"WWW-Authenticate": "Bearer"})
    key = await service.keys.lookup(credentials.credentials)
    if key is None:
        raise ApiError(401, "unauthorized", "unknown or revoked API key",
                       headers={"WWW-Authenticate": "Bearer"})
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]


def actor(key: ApiKey) -> str:
    """Who a change made with this key is recorded as (audit rows, rule versions)."""
    return key.name or f"key:{key.id}"


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
