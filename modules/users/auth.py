"""The JWT authentication backend: bearer transport, session-bound token strategy.

fastapi-users' own JWTStrategy cannot revoke anything. `SessionTokenStrategy` keeps its
Strategy interface (so `fastapi_users.current_user(...)` and its routers work unchanged) but
binds each access token to a login session and checks that session on every request.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi_users import BaseUserManager, exceptions
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, Strategy

from app.net import client_address
from modules.users.models import User
from modules.users.sessions_service import SessionService, SessionServiceDep
from modules.users.tokens import AccessClaims, InvalidAccessToken, read_access_token

# Swagger's Authorize button posts the form here (relative to the docs page). The bearer
# transport reads the Authorization header only, never a query parameter (RFC 6750 §2.3).
bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


class SessionTokenStrategy(Strategy[User, uuid.UUID]):
    """One instance per request (a dependency), so what it verified is remembered for it."""

    def __init__(self, service: SessionService, request: Request | None = None) -> None:
        self.service = service
        self.request = request
        # Tokens this request has accepted, with their claims and user: a request meets its
        # token several times (the router's `authenticated`, the route's own dependency).
        self._verified: dict[str, tuple[AccessClaims, User]] = {}

    def verified_claims(self, token: str) -> AccessClaims | None:
        """The claims of a token this request has already accepted."""
        verified = self._verified.get(token)
        return verified[0] if verified else None

    async def read_token(
        self, token: str | None, user_manager: BaseUserManager[User, uuid.UUID]
    ) -> User | None:
        if token is None:
            return None
        if token in self._verified:
            return self._verified[token][1]
        try:
            claims = read_access_token(self.service.runtime.access_keys, token)
        except InvalidAccessToken:
            return None
        # Logout, password change and the like end the session: its tokens die at once.
        if not await self.service.is_live(claims):
            return None
        try:
            user = await user_manager.get(claims.user_id)
        except exceptions.UserNotExists:
            return None
        self._verified[token] = (claims, user)
        if self.request is not None:
            # The caller's session, for hooks that must tell it apart (a password change ends
            # the user's other sessions, not the one it was made from).
            self.request.state.session_id = claims.session_id
            # And the caller: a superuser patching itself through /users/{id} is self-service.
            self.request.state.user_id = user.id
        return user

    async def write_token(self, user: User) -> str:
        """Starts a login session; the route /auth/jwt/login also hands out its refresh token."""
        request = self.request
        issued = await self.service.start(
            user,
            request.headers.get("user-agent") if request else None,
            client_address(request) if request else None,
        )
        return issued.access_token

    async def destroy_token(self, token: str, user: User) -> None:
        claims = self.verified_claims(token)
        if claims is None:
            try:
                claims = read_access_token(self.service.runtime.access_keys, token)
            except InvalidAccessToken:
                return
        await self.service.end(claims.session_id, user.id, reason="logout")


# async: a plain `def` dependency would hop to the thread pool on every request.
async def get_session_strategy(
    request: Request, service: SessionServiceDep
) -> SessionTokenStrategy:
    return SessionTokenStrategy(service, request)


SessionStrategyDep = Annotated[SessionTokenStrategy, Depends(get_session_strategy)]

auth_backend: AuthenticationBackend[User, uuid.UUID] = AuthenticationBackend(
    name="jwt", transport=bearer_transport, get_strategy=get_session_strategy
)
