"""Email verification: `POST /auth/request-verify-token` → `POST /auth/verify`.

request-verify-token: 202 at once, no body, whether or not the account exists (see
recovery_router.py). verify replaces fastapi-users' route of the same path and field, with a
named body model.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi_users import exceptions
from fastapi_users.router.common import ErrorCode

from app.background import background_tasks
from app.net import client_address
from modules.users.dependencies import RuntimeDep, UserManagerDep
from modules.users.emails import canonical_email
from modules.users.endpoints.recovery_router import RATE_LIMITED_RESPONSE, manager_of_job
from modules.users.endpoints.responses import problem_examples
from modules.users.runtime import UsersRuntime
from modules.users.schemas import UserRead, VerifyRequest, VerifyTokenRequest

router = APIRouter()


async def _send_verify_mail(request: Request, runtime: UsersRuntime, email: str) -> None:
    async with manager_of_job(request, runtime) as manager:
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
    "/request-verify-token",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    name="verify:request_verify_token",
    summary="Ask for a verification mail (202 whether or not the account exists)",
    responses={
        202: {"description": "Accepted: a mail is on its way if the account exists."},
        **RATE_LIMITED_RESPONSE,
    },
)
async def request_verify_token(
    request: Request, body: VerifyTokenRequest, runtime: RuntimeDep
) -> Response:
    email = canonical_email(body.email)
    await runtime.limiter.hit_mail_request("verify", email, client_address(request))
    mail = _send_verify_mail(request, runtime, email)
    background_tasks(request.app).submit("verification mail", mail)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/verify",
    name="verify:verify",
    summary="Confirm the email address with the mailed token",
    response_model=UserRead,
    responses=problem_examples(
        400,
        ErrorCode.VERIFY_USER_BAD_TOKEN.value,
        ErrorCode.VERIFY_USER_ALREADY_VERIFIED.value,
    ),
)
async def verify(request: Request, body: VerifyRequest, user_manager: UserManagerDep) -> UserRead:
    # fastapi-users' verify route, with a named body.
    try:
        user = await user_manager.verify(body.token, request)
    except (exceptions.InvalidVerifyToken, exceptions.UserNotExists):
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST, detail=ErrorCode.VERIFY_USER_BAD_TOKEN
        ) from None
    except exceptions.UserAlreadyVerified:
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST, detail=ErrorCode.VERIFY_USER_ALREADY_VERIFIED
        ) from None
    return UserRead.model_validate(user)
