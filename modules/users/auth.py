"""The JWT authentication backend: bearer transport, token strategy."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy

from modules.users.models import User
from modules.users.runtime import UsersRuntime, get_runtime

TOKEN_AUDIENCE = "gatehouse:access"  # noqa: S105 - an audience name, not a secret

# Swagger's Authorize button posts the form here (relative to the docs page).
bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


def get_jwt_strategy(
    runtime: Annotated[UsersRuntime, Depends(get_runtime)],
) -> JWTStrategy[User, uuid.UUID]:
    return JWTStrategy(
        secret=runtime.secret,
        lifetime_seconds=runtime.settings.access_token_ttl,
        token_audience=[TOKEN_AUDIENCE],
        algorithm="HS256",
    )


auth_backend: AuthenticationBackend[User, uuid.UUID] = AuthenticationBackend(
    name="jwt", transport=bearer_transport, get_strategy=get_jwt_strategy
)
