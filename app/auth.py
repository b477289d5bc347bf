"""The authentication slot: private by default, through a dependency you can read.

At most one module authenticates (the users module). It hands the kernel its `current user`
dependency in `Module(auth=...)`; the factory mounts every router not declared `public=True`
with `Security(that dependency)`. Nothing is swapped in through FastAPI's testing hook (the
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

from fastapi import Depends, HTTPException, status
from fastapi.dependencies.utils import get_dependant
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
