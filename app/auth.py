"""The authentication slot: private by default, through a dependency you can read.

At most one module authenticates (the users module). It hands the kernel its `current user`
dependency in `Module(auth=...)`; the factory mounts every router not declared `public=True`
with `Security(that dependency)`, unless each of its routes asks for it already
(`authenticates_itself`). Nothing is swapped in through FastAPI's testing hook (the
overrides mapping): the dependency you read in the module is the one that runs.

It must be a FastAPI security dependency (its tree holds a security scheme, e.g. an
OAuth2PasswordBearer), so OpenAPI gives every private operation the bearer requirement and
Swagger's Authorize button sends the token. A route that also asks for the user (`CurrentUser`)
names the same callable, so FastAPI's per-request cache resolves it once: one authentication
per request.

With no authenticating module loaded, private routes answer 401 rather than being silently open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.base import SecurityBase

# Same shape as a real provider (a bearer scheme that does not answer on its own), so the
# OpenAPI of an app without users still says the routes need a token.
_no_provider_scheme = HTTPBearer(auto_error=False)


async def nobody(
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_no_provider_scheme)],
) -> Any:
    """Stands in when no module authenticates: every private route is closed."""
    raise HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"}
    )


def has_security_scheme(dependency: Callable[..., Any]) -> bool:
    """Whether OpenAPI will see a security scheme in this dependency's tree (checked once, at
    start-up, so a provider that forgets its scheme is refused instead of silently undocumented)."""
    pending = [get_dependant(path="", call=dependency)]
    while pending:
        dependant = pending.pop()
        if isinstance(dependant.call, SecurityBase):
            return True
        pending.extend(dependant.dependencies)
    return False


def _asks_for(dependant: Dependant, provider: Callable[..., Any]) -> bool:
    return any(d.call is provider or _asks_for(d, provider) for d in dependant.dependencies)


def authenticates_itself(router: APIRouter, provider: Callable[..., Any]) -> bool:
    """Whether every route of `router` already asks for `provider` (a route's `CurrentUser`,
    fastapi-users' `/users/me`). Mounted behind `Security(provider)` as well, such a route would
    have FastAPI walk the provider's dependency tree twice per request: its per-request cache
    skips the second call, not the walk (about 5% of a cached `GET /users/me`'s CPU, measured).
    The factory mounts such a router without the router-wide dependency: each route still
    authenticates, through its own. Anything else (a nested router, a route that does not ask)
    keeps the router-wide dependency."""
    routes = router.routes
    return bool(routes) and all(
        isinstance(route, APIRoute) and _asks_for(route.dependant, provider) for route in routes
    )
