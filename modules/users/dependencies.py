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

from app.context import set_user_id
from app.database import DbSession
from app.net import client_address
from modules.users.auth import SessionStrategyDep, auth_backend
from modules.users.manager import UserManager
from modules.users.models import User
from modules.users.roles_service import AccessService
from modules.users.runtime import UsersRuntime, get_runtime
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


class SharedAuthenticator(Authenticator[User, uuid.UUID]):
    """fastapi-users builds a new dependency on every `current_user(...)` call, each reading the
    token again: the router's dependency, the route's own (GET /users/me, a superuser route,
    `CurrentLogin`) would each authenticate. Here every variant checks its rule (active,
    verified, superuser) on the result of one shared dependency that reads the token, so FastAPI's
    per-request cache reads it once, whichever variants a request asks for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read = super().current_user_token(optional=True)
        self._variants: dict[tuple[str, bool, bool, bool, bool], Any] = {}

    def current_user_token(
        self,
        optional: bool = False,
        active: bool = False,
        verified: bool = False,
        superuser: bool = False,
        get_enabled_backends: Any = None,
    ) -> Any:
        if get_enabled_backends is not None:
            raise NotImplementedError("one authentication backend, always enabled")
        key = ("token", optional, active, verified, superuser)
        if key in self._variants:
            return self._variants[key]
        read = self._read

        # A default, not Annotated: this module's annotations are strings, and FastAPI could not
        # resolve the local `read` in one.
        async def current_user_token(
            read_result: tuple[User | None, str | None] = Depends(read),
        ) -> tuple[User | None, str | None]:
            user, token = read_result
            # fastapi-users' own rules (Authenticator._authenticate), applied to the shared read.
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
            return user, token

        self._variants[key] = current_user_token
        return current_user_token

    def current_user(
        self,
        optional: bool = False,
        active: bool = False,
        verified: bool = False,
        superuser: bool = False,
        get_enabled_backends: Any = None,
    ) -> Any:
        key = ("user", optional, active, verified, superuser)
        if key in self._variants:
            return self._variants[key]
        with_token = self.current_user_token(
            optional, active, verified, superuser, get_enabled_backends
        )

        async def current_user(
            user_token: tuple[User | None, str | None] = Depends(with_token),
        ) -> User | None:
            return user_token[0]

        self._variants[key] = current_user
        return current_user


fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])
fastapi_users.authenticator = SharedAuthenticator([auth_backend], get_user_manager)
fastapi_users.current_user = fastapi_users.authenticator.current_user  # type: ignore[method-assign]

_current_active_user = fastapi_users.current_user(active=True)
_current_superuser = fastapi_users.current_user(active=True, superuser=True)
_current_user_token = fastapi_users.authenticator.current_user_token(active=True)


async def current_active_user(user: Annotated[User, Depends(_current_active_user)]) -> User:
    set_user_id(user.id)  # the access line and every later log line name the user
    return user


async def current_superuser(user: Annotated[User, Depends(_current_superuser)]) -> User:
    set_user_id(user.id)
    return user


@dataclass(frozen=True)
class Login:
    """The caller and the login session its access token belongs to."""

    user: User
    session_id: uuid.UUID


async def current_login(
    user_token: Annotated[tuple[User, str], Depends(_current_user_token)],
    strategy: SessionStrategyDep,
) -> Login:
    user, token = user_token
    # The same strategy instance (cached per request) has just verified this token.
    claims = strategy.verified_claims(token)
    if claims is None:
        raise HTTPException(status_code=status.HTTP_401_UNAUTHORIZED)
    set_user_id(user.id)
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
