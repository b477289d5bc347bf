"""The pages mailed links open (HTML, no script): each GET shows a form, its POST does the work
with the same manager call as the JSON route, and answers a page.

- `GET /auth/reset-password?token=…` → a new-password form → `POST /auth/reset-password/form`.
- `GET /auth/verify?token=…` → a "Confirm" button → `POST /auth/verify/form`. The GET changes
  nothing on purpose: mail scanners and link previews fetch links before the reader does,
  and a GET that verified would confirm an address nobody looked at.
- `GET /auth/undo-email-change?token=…` → a new-password form →
  `POST /auth/undo-email-change/form`.

The JSON routes (`POST /auth/reset-password`, ...) stay what API clients call; these pages are
not part of the OpenAPI contract. A form post needs no CSRF token: the mailed token in the
form is the credential, and a forged post would have to know it. A team with its own
front-end points the links there instead (RESET_PASSWORD_URL_TEMPLATE, VERIFY_URL_TEMPLATE,
EMAIL_UNDO_URL_TEMPLATE) and these pages are simply never opened.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse
from fastapi_users import exceptions

from modules.users.dependencies import UserManagerDep
from modules.users.exceptions import UndoEmailChangeBadToken
from modules.users.pages import Field, Problem, page
from modules.users.pages import Form as PageForm

router = APIRouter(include_in_schema=False)

Token = Annotated[str, Query(max_length=4096)]
FormText = Annotated[str, Form(max_length=4096)]

RESET_BAD_TOKEN = Problem.of(400, "RESET_PASSWORD_BAD_TOKEN")
VERIFY_BAD_TOKEN = Problem.of(400, "VERIFY_USER_BAD_TOKEN")
UNDO_BAD_TOKEN = Problem.of(400, UndoEmailChangeBadToken.code, UndoEmailChangeBadToken.detail)
PASSWORDS_DIFFER = "The two passwords differ; type the same new password twice."
NEW_LINK = (
    "Links work once and for a limited time. Ask for a new mail where you asked for this one."
)


def _path(request: Request, path: str) -> str:
    # The form posts to this same origin; behind a path prefix (root_path) too.
    return f"{request.scope.get('root_path', '')}{path}"


def _new_password_form(request: Request, action: str, token: str, button: str) -> PageForm:
    return PageForm(
        action=_path(request, action),
        button=button,
        fields=(
            Field("token", value=token, hidden=True),
            Field("password", label="New password"),
            Field("password_again", label="New password, again"),
        ),
    )


# Password reset --------------------------------------------------------------------------------


def _reset_form(request: Request, token: str) -> PageForm:
    return _new_password_form(request, "/auth/reset-password/form", token, "Set the password")


@router.get("/reset-password", name="pages:reset_password")
async def reset_password_page(
    request: Request, manager: UserManagerDep, token: Token = ""
) -> HTMLResponse:
    if not token or not await manager.reset_token_is_live(token):
        return page("Reset your password", NEW_LINK, problem=RESET_BAD_TOKEN)
    return page(
        "Reset your password",
        "Choose a new password. Every session of your account ends when it is set.",
        form=_reset_form(request, token),
    )


@router.post("/reset-password/form", name="pages:reset_password_submit")
async def reset_password_submit(
    request: Request,
    manager: UserManagerDep,
    token: FormText = "",
    password: FormText = "",
    password_again: FormText = "",
) -> HTMLResponse:
    title = "Reset your password"
    if password != password_again or not password:
        problem = Problem.of(400, "RESET_PASSWORD_INVALID_PASSWORD", PASSWORDS_DIFFER)
        return page(title, problem=problem, form=_reset_form(request, token))
    try:
        await manager.reset_password(token, password, request)
    except (
        exceptions.InvalidResetPasswordToken,
        exceptions.UserNotExists,
        exceptions.UserInactive,
    ):
        return page(title, NEW_LINK, problem=RESET_BAD_TOKEN)
    except exceptions.InvalidPasswordException as exc:
        problem = Problem.of(400, "RESET_PASSWORD_INVALID_PASSWORD", str(exc.reason))
        return page(title, problem=problem, form=_reset_form(request, token))
    return page(
        "Your password was changed",
        "Every session of your account has ended: log in again with the new password.",
    )


# Email verification ----------------------------------------------------------------------------


@router.get("/verify", name="pages:verify")
async def verify_page(request: Request, manager: UserManagerDep, token: Token = "") -> HTMLResponse:
    user = await manager.verify_token_user(token) if token else None
    if user is None:
        return page("Confirm your email address", NEW_LINK, problem=VERIFY_BAD_TOKEN)
    if user.is_verified:
        return page("Your email address is confirmed", f"{user.email} is confirmed already.")
    form = PageForm(
        action=_path(request, "/auth/verify/form"),
        button="Confirm",
        fields=(Field("token", value=token, hidden=True),),
    )
    return page(
        "Confirm your email address",
        f"Confirm {user.email} as the address of your account.",
        form=form,
    )


@router.post("/verify/form", name="pages:verify_submit")
async def verify_submit(
    request: Request, manager: UserManagerDep, token: FormText = ""
) -> HTMLResponse:
    try:
        user = await manager.verify(token, request)
    except (exceptions.InvalidVerifyToken, exceptions.UserNotExists):
        return page("Confirm your email address", NEW_LINK, problem=VERIFY_BAD_TOKEN)
    except exceptions.UserAlreadyVerified:
        return page("Your email address is confirmed", "It was confirmed already.")
    return page("Your email address is confirmed", f"{user.email} is confirmed. Thank you.")


# Undo of an email change -----------------------------------------------------------------------


def _undo_form(request: Request, token: str) -> PageForm:
    return _new_password_form(
        request, "/auth/undo-email-change/form", token, "Undo the change and set the password"
    )


UNDO_TITLE = "Undo the change of your email address"
UNDO_INTRO = (
    "Whoever changed your address knew your password: choose a new one. This puts this "
    "address back and ends every session of your account."
)


@router.get("/undo-email-change", name="pages:undo_email_change")
async def undo_email_change_page(
    request: Request, manager: UserManagerDep, token: Token = ""
) -> HTMLResponse:
    if not token or not await manager.undo_token_is_live(token):
        return page(UNDO_TITLE, NEW_LINK, problem=UNDO_BAD_TOKEN)
    return page(UNDO_TITLE, UNDO_INTRO, form=_undo_form(request, token))


@router.post("/undo-email-change/form", name="pages:undo_email_change_submit")
async def undo_email_change_submit(
    request: Request,
    manager: UserManagerDep,
    token: FormText = "",
    password: FormText = "",
    password_again: FormText = "",
) -> HTMLResponse:
    if password != password_again or not password:
        problem = Problem.of(400, "UNDO_EMAIL_CHANGE_INVALID_PASSWORD", PASSWORDS_DIFFER)
        return page(UNDO_TITLE, problem=problem, form=_undo_form(request, token))
    try:
        user = await manager.undo_email_change(token, password)
    except UndoEmailChangeBadToken:
        return page(UNDO_TITLE, NEW_LINK, problem=UNDO_BAD_TOKEN)
    except exceptions.InvalidPasswordException as exc:
        problem = Problem.of(400, "UNDO_EMAIL_CHANGE_INVALID_PASSWORD", str(exc.reason))
        return page(UNDO_TITLE, problem=problem, form=_undo_form(request, token))
    return page(
        "Your email address is back",
        f"The account is at {user.email} again, with the new password. Every session has "
        "ended: log in again.",
    )
