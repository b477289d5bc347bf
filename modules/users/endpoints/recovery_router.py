"""Account recovery: `POST /auth/forgot-password` → `POST /auth/reset-password`, and
`POST /auth/undo-email-change`.

forgot-password (and request-verify-token, in verify_router.py): 202 at once, no body, the
same time whether or not the account exists (ASVS 6.3.8). They replace fastapi-users' routes
of the same name and body. The answer waits only for the rate limit (per canonical email and
per client address, known account or not); the account lookup and the queueing of the mail
happen after it, in a job with its own database session; the mail, and its token (an HMAC, no
hash), are built when the outbox sends it.

reset-password replaces fastapi-users' route of the same path and fields, with a named body
model and a 204 (fastapi-users answers `null`).

`POST /auth/undo-email-change`: the owner's way back from an email change it did not make,
with the token mailed to the old address (see UserManager.undo_email_change).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi_users import exceptions
from fastapi_users.router.common import ErrorCode

from app.background import background_tasks
from app.database import get_database, unit_of_work
from app.net import client_address
from modules.users.dependencies import RuntimeDep, UserManagerDep
from modules.users.emails import canonical_email
from modules.users.endpoints.responses import SHORT_PASSWORD_REASON, problem_examples
from modules.users.exceptions import (
    RateLimited,
    UndoEmailChangeBadToken,
    UndoEmailChangeInvalidPassword,
)
from modules.users.manager import UserManager
from modules.users.runtime import UsersRuntime
from modules.users.schemas import (
    ForgotPasswordRequest,
    ResetPasswordRequest,
    UndoEmailChangeRequest,
    UserRead,
)
from modules.users.users_repository import UserDatabase

router = APIRouter()

RATE_LIMITED_RESPONSE = problem_examples(429, RateLimited)


@asynccontextmanager
async def manager_of_job(request: Request, runtime: UsersRuntime) -> AsyncIterator[UserManager]:
    """A manager with its own unit of work (the request's has ended once it answered): it
    commits at the job's end, or rolls back if the job fails."""
    async with unit_of_work(get_database(request), runtime.events) as session:
        yield UserManager(
            UserDatabase(session),
            runtime,
            app=request.app,
            request=request,
        )


async def _send_reset_mail(request: Request, runtime: UsersRuntime, email: str) -> None:
    async with manager_of_job(request, runtime) as manager:
        try:
            user = await manager.get_by_email(email)
            await manager.forgot_password(user, request)
        except (exceptions.UserNotExists, exceptions.UserInactive):
            return


@router.post(
    "/forgot-password",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    name="reset:forgot_password",
    summary="Ask for a password-reset mail (202 whether or not the account exists)",
    responses={
        202: {"description": "Accepted: a mail is on its way if the account exists."},
        **RATE_LIMITED_RESPONSE,
    },
)
async def forgot_password(
    request: Request, body: ForgotPasswordRequest, runtime: RuntimeDep
) -> Response:
    email = canonical_email(body.email)
    await runtime.limiter.hit_mail_request("forgot", email, client_address(request))
    background_tasks(request.app).submit("reset mail", _send_reset_mail(request, runtime, email))
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/reset-password",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    name="reset:reset_password",
    summary="Set a new password with the mailed token (ends every session)",
    responses=problem_examples(
        400,
        ErrorCode.RESET_PASSWORD_BAD_TOKEN.value,
        (ErrorCode.RESET_PASSWORD_INVALID_PASSWORD.value, SHORT_PASSWORD_REASON),
    ),
)
async def reset_password(
    request: Request, body: ResetPasswordRequest, user_manager: UserManagerDep
) -> None:
    # fastapi-users' reset route, with a named body and no `null` answer.
    try:
        await user_manager.reset_password(body.token, body.password, request)
    except (
        exceptions.InvalidResetPasswordToken,
        exceptions.UserNotExists,
        exceptions.UserInactive,
    ):
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST, detail=ErrorCode.RESET_PASSWORD_BAD_TOKEN
        ) from None
    except exceptions.InvalidPasswordException as exc:
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST,
            detail={"code": ErrorCode.RESET_PASSWORD_INVALID_PASSWORD, "reason": exc.reason},
        ) from None


@router.post(
    "/undo-email-change",
    name="users:undo_email_change",
    summary="Undo an email change with the token mailed to the old address",
    description=(
        "Restores the old address (verified), sets the given new password and ends every "
        "session of the account. The token works once, for EMAIL_UNDO_TTL seconds."
    ),
    response_model=UserRead,
    responses=problem_examples(
        400,
        UndoEmailChangeBadToken,
        (UndoEmailChangeInvalidPassword.code, SHORT_PASSWORD_REASON),
    ),
)
async def undo_email_change(body: UndoEmailChangeRequest, user_manager: UserManagerDep) -> UserRead:
    try:
        user = await user_manager.undo_email_change(body.token, body.password)
    except exceptions.InvalidPasswordException as exc:
        raise UndoEmailChangeInvalidPassword(str(exc.reason)) from None
    return UserRead.model_validate(user)
