"""Typed dependencies: a route's signature says who may call it (`CurrentUser`, `Superuser`).

`current_active_user` is this module's auth provider (`Module(auth=...)`): the app mounts every
private router behind it, and a route's `CurrentUser` names the same callable, so FastAPI's
per-request cache authenticates once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi_users import FastAPIUsers
from fastapi_users.authentication import Authenticator
from sqlalchemy.ext.asyncio import AsyncSession

from app.context import set_user_id
from app.database import DbSession
from app.net import client_address
from modules.users.auth import SessionTokenStrategy, auth_backend, bearer_transport
from modules.users.manager import UserManager
from modules.users.models import User
from modules.users.roles_service import AccessService
from modules.users.runtime import UsersRuntime, get_runtime
from modules.users.sessions_service import SessionService
from modules.users.tokens import AccessClaims
from modules.users.users_repository import UserDatabase


# Plain returns, not `yield`: a yield dependency lives to the end of the request, and FastAPI
# refuses one that depends on the function-scoped unit of work (DbSession).
async def get_user_db(session: DbSession) -> UserDatabase:
    return UserDatabase(session)


async def get_user_manager(
    request: Request,
    user_db: Annotated[UserDatabase, Depends(get_user_db)],
    runtime: Annotated[UsersRuntime, Depends(get_runtime)],
) -> UserManager:
    return UserManager(user_db, runtime, app=request.app, request=request)


async def _authenticate(
    request: Request, db: AsyncSession, runtime: UsersRuntime, token: str | None
) -> User | None:
    """The token's user, or None; read once per request whichever variants ask (the result is
    kept on the request). No user manager: the session and its user are one read, or none
    with the auth cache."""
    memo: tuple[str | None, User | None] | None = getattr(request.state, "authenticated", None)
    if memo is not None and memo[0] == token:
        return memo[1]
    strategy = SessionTokenStrategy(SessionService(db, runtime), request)
    user = await strategy.read_token(token, None)
    request.state.authenticated = (token, user)
    return user


def _apply_rules(
    user: User | None, optional: bool, active: bool, verified: bool, superuser: bool
) -> User | None:
    """fastapi-users' own rules (Authenticator._authenticate)."""
    status_code = status.HTTP_401_UNAUTHORIZED
    if user:
        status_code = status.HTTP_403_FORBIDDEN
        if active and not user.is_active:
            status_code = status.HTTP_401_UNAUTHORIZED
            user = None
        elif (verified and not user.is_verified) or (superuser and not user.is_superuser):
            user = None
    if not user and not optional:
        raise HTTPException(status_code=status_code)
    if user is not None:
        set_user_id(user.id)  # the access line and every later log line name the user
    return user


class SharedAuthenticator(Authenticator[User, uuid.UUID]):
    """fastapi-users builds a new dependency on every `current_user(...)` call, each reading the
    token again: the router's dependency, the route's own (GET /users/me, a superuser route,
    `CurrentLogin`) would each authenticate. Here every variant is one flat dependency (the
    request, its unit of work, the runtime, the bearer token: few for FastAPI to solve per
    request) that checks its rule (active, verified, superuser) on one read per request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._variants: dict[tuple[bool, bool, bool, bool, bool], Any] = {}

    def _variant(
        self,
        with_token: bool,
        optional: bool,
        active: bool,
        verified: bool,
        superuser: bool,
        get_enabled_backends: Any,
    ) -> Any:
        if get_enabled_backends is not None:
            raise NotImplementedError("one authentication backend, always enabled")
        key = (with_token, optional, active, verified, superuser)
        if key in self._variants:
            return self._variants[key]

        async def authenticated(
            request: Request,
            db: DbSession,
            runtime: Annotated[UsersRuntime, Depends(get_runtime)],
            token: Annotated[str | None, Depends(bearer_transport.scheme)],
        ) -> Any:
            user = await _authenticate(request, db, runtime, token)
            user = _apply_rules(user, optional, active, verified, superuser)
            return (user, token) if with_token else user

        self._variants[key] = authenticated
        return authenticated

    def current_user_token(
        self,
        optional: bool = False,
        active: bool = False,
        verified: bool = False,
        superuser: bool = False,
        get_enabled_backends: Any = None,
    ) -> Any:
        return self._variant(True, optional, active, verified, superuser, get_enabled_backends)

    def current_user(
        self,
        optional: bool = False,
        active: bool = False,
        verified: bool = False,
        superuser: bool = False,
        get_enabled_backends: Any = None,
    ) -> Any:
        return self._variant(False, optional, active, verified, superuser, get_enabled_backends)


fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])
fastapi_users.authenticator = SharedAuthenticator([auth_backend], get_user_manager)
fastapi_users.current_user = fastapi_users.authenticator.current_user  # type: ignore[method-assign]

_current_user_token = fastapi_users.authenticator.current_user_token(active=True)
# The same callables fastapi-users' own routes get for `current_user(active=True)` (and with
# superuser=True): FastAPI solves each once per request, router-wide or in a route.
current_active_user = fastapi_users.current_user(active=True)
current_superuser = fastapi_users.current_user(active=True, superuser=True)


@dataclass(frozen=True)
class Login:
    """The caller and the login session its access token belongs to."""

    user: User
    session_id: uuid.UUID


async def current_login(
    request: Request,
    user_token: Annotated[tuple[User, str], Depends(_current_user_token)],
) -> Login:
    user, _token = user_token
    # Set by the strategy that has just verified this token (read_current_user).
    claims: AccessClaims | None = getattr(request.state, "access_claims", None)
    if claims is None:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED)
    return Login(user=user, session_id=claims.session_id)


async def registration_budget(
    request: Request, runtime: Annotated[UsersRuntime, Depends(get_runtime)]
) -> None:
    """REGISTRATIONS_PER_ADDRESS: every attempt counts, whatever its answer, so register
    cannot be used to test thousands of addresses for existing accounts, nor to flood."""
    await runtime.limiter.hit_registration(client_address(request))


CurrentUser = Annotated[User, Depends(current_active_user)]
Superuser = Annotated[User, Depends(current_superuser)]
UserManagerDep = Annotated[UserManager, Depends(get_user_manager)]
CurrentLogin = Annotated[Login, Depends(current_login)]
RuntimeDep = Annotated[UsersRuntime, Depends(get_runtime)]


async def get_access_service(db: DbSession) -> AccessService:
    return AccessService(db)


AccessServiceDep = Annotated[AccessService, Depends(get_access_service)]
