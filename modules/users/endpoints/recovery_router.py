"""`POST /auth/forgot-password` and `POST /auth/request-verify-token`: 202 at once, the same
body and the same time whether or not the account exists (ASVS 6.3.8).

They replace fastapi-users' two routes of the same name and body. The answer waits only for
the rate limit (per canonical email and per client address, known account or not); the account
lookup and the queueing of the mail happen after it, in a job with its own database session;
the mail, and its token (an HMAC, no hash), are built when the outbox sends it.

`POST /auth/undo-email-change`: the owner's way back from an email change it did not make,
with the token mailed to the old address (see UserManager.undo_email_change).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Body, Request, status
from fastapi_users import exceptions
from pydantic import EmailStr

from app.background import background_tasks
from app.database import get_database
from app.net import client_address
from modules.users.dependencies import RuntimeDep, UserManagerDep
from modules.users.emails import canonical_email
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import (
    RateLimited,
    UndoEmailChangeBadToken,
    UndoEmailChangeInvalidPassword,
)
from modules.users.manager import UserManager
from modules.users.runtime import UsersRuntime
from modules.users.schemas import UndoEmailChangeRequest, UserRead
from modules.users.users_repository import UserDatabase

router = APIRouter()

RATE_LIMITED_RESPONSE = problem_examples(429, RateLimited)


@asynccontextmanager
async def _manager(request: Request, runtime: UsersRuntime) -> AsyncIterator[UserManager]:
    """A manager with its own session: the request's session is closed once it has answered."""
    async with get_database(request).sessionmaker() as session:
        yield UserManager(
            UserDatabase(session),
            runtime,
            app=request.app,
            request=request,
        )


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
    email = canonical_email(email)
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
    email = canonical_email(email)
    await runtime.limiter.hit_mail_request("verify", email, client_address(request))
    mail = _send_verify_mail(request, runtime, email)
    background_tasks(request.app).submit("verification mail", mail)


@router.post(
    "/undo-email-change",
    name="users:undo_email_change",
    summary="Undo an email change with the token mailed to the old address",
    description=(
        "Restores the old address (verified), sets the given new password and ends every "
        "session of the account. The token works once, for EMAIL_UNDO_TTL seconds."
    ),
    response_model=UserRead,
    responses=problem_examples(400, UndoEmailChangeBadToken, UndoEmailChangeInvalidPassword),
)
async def undo_email_change(body: UndoEmailChangeRequest, user_manager: UserManagerDep) -> UserRead:
    try:
        user = await user_manager.undo_email_change(body.token, body.password)
    except exceptions.InvalidPasswordException as exc:
        raise UndoEmailChangeInvalidPassword(str(exc.reason)) from None
    return UserRead.model_validate(user)
