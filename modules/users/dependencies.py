"""Typed dependencies: a route's signature says who may call it (`CurrentUser`, `Superuser`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi_users import FastAPIUsers

from app.context import set_user_id
from app.database import DbSession
from app.net import client_address
from modules.users.auth import SessionStrategyDep, auth_backend
from modules.users.manager import UserManager
from modules.users.models import User
from modules.users.runtime import UsersRuntime, get_runtime
from modules.users.users_repository import UserDatabase


async def get_user_db(session: DbSession) -> AsyncIterator[UserDatabase]:
    yield UserDatabase(session)


async def get_user_manager(
    request: Request,
    user_db: Annotated[UserDatabase, Depends(get_user_db)],
    runtime: Annotated[UsersRuntime, Depends(get_runtime)],
) -> AsyncIterator[UserManager]:
    yield UserManager(user_db, runtime, app=request.app, request=request)


fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])

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
