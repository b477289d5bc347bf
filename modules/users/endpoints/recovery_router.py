"""`POST /auth/forgot-password` and `POST /auth/request-verify-token`: 202 at once, the same
body and the same time whether or not the account exists (ASVS 6.3.8).

They replace fastapi-users' two routes of the same name and body. The answer waits only for
the rate limit (per email and per client address, known account or not); the account lookup,
queueing of the mail happen after it, in a job with its own database session; the mail (and
its token) is built when the outbox sends it (modules/integrations/outbox.py).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Request, status
from fastapi_users import exceptions
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from pydantic import EmailStr

from app.background import background_tasks
from app.database import get_database
from app.net import client_address
from modules.users.dependencies import RuntimeDep
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import RateLimited
from modules.users.manager import UserManager
from modules.users.models import User
from modules.users.runtime import UsersRuntime

router = APIRouter()

RATE_LIMITED_RESPONSE = problem_examples(429, RateLimited)


@asynccontextmanager
async def _manager(request: Request, runtime: UsersRuntime) -> AsyncIterator[UserManager]:
    """A manager with its own session: the request's session is closed once it has answered.
    Committed at the end: the job's edge (the mail it queued)."""
    async with get_database(request).sessionmaker() as session:
        yield UserManager(
            SQLAlchemyUserDatabase[User, uuid.UUID](session, User),
            runtime,
            app=request.app,
            request=request,
        )
        await session.commit()


async def _send_reset_mail(request: Request, runtime: UsersRuntime, email: str) -> None:
    async with _manager(request, runtime) as manager:
        try:
            user = await manager.get_by_email(email)
            await manager.forgot_password(user, request)
        except (exceptions.UserNotExists, exceptions.UserInactive):
            return


async def _send_verify_mail(request: Request, runtime: UsersRuntime, email: str) -> None:
    async with _manager(request, runtime) as manager:
        try:
            user = await manager.get_by_email(email)
            await manager.request_verify(user, request)
        except (
            exceptions.UserNotExists,
            exceptions.UserInactive,
            exceptions.UserAlreadyVerified,
        ):
            return


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    name="reset:forgot_password",
    summary="Ask for a password-reset mail (202 whether or not the account exists)",
    responses=RATE_LIMITED_RESPONSE,
)
async def forgot_password(
    request: Request, email: Annotated[EmailStr, Body(embed=True)], runtime: RuntimeDep
) -> None:
    await runtime.limiter.hit_mail_request("forgot", email, client_address(request))
    background_tasks(request.app).submit("reset mail", _send_reset_mail(request, runtime, email))


@router.post(
    "/request-verify-token",
    status_code=status.HTTP_202_ACCEPTED,
    name="verify:request-token",
    summary="Ask for a verification mail (202 whether or not the account exists)",
    responses=RATE_LIMITED_RESPONSE,
)
async def request_verify_token(
    request: Request, email: Annotated[EmailStr, Body(embed=True)], runtime: RuntimeDep
) -> None:
    await runtime.limiter.hit_mail_request("verify", email, client_address(request))
    mail = _send_verify_mail(request, runtime, email)
    background_tasks(request.app).submit("verification mail", mail)
