"""/auth/jwt: login, refresh, logout, logout-all. Replaces fastapi-users' auth router, which
has no refresh tokens and whose JWT logout revokes nothing."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from app.net import client_address
from modules.users.dependencies import CurrentLogin, UserManagerDep
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import (
    LoginBadCredentials,
    RateLimited,
    RefreshTokenInvalid,
    RefreshTokenReused,
    oauth2_error,
)
from modules.users.schemas import LoginForm, RefreshRequest, TokenPair
from modules.users.sessions_service import IssuedTokens, SessionServiceDep

# Token answers must not be cached by browsers or proxies (RFC 6749 §5.1, ASVS 14.3.2).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _token_pair(response: Response, issued: IssuedTokens) -> TokenPair:
    response.headers.update(NO_STORE)
    return TokenPair(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
    )


public_router = APIRouter()
bearer_router = APIRouter()

_UNAUTHORIZED = problem_examples(401, "UNAUTHORIZED")


@public_router.post(
    "/login",
    name="auth:jwt.login",
    summary="Log in: start a session, get an access and a refresh token",
    description=(
        "Form fields `username` (the email) and `password`, as OAuth2's password flow, so "
        "Swagger's Authorize button works (OAuth2 clients may send `grant_type`, `scope` and "
        "client credentials too: they are ignored). Every login starts a new session with new "
        "tokens. A refusal also carries OAuth2's `error` and `error_description`."
    ),
    response_model=TokenPair,
    responses={
        **problem_examples(400, LoginBadCredentials),
        **problem_examples(429, RateLimited, extra=oauth2_error(RateLimited)),
    },
)
async def login(
    request: Request,
    response: Response,
    form: Annotated[LoginForm, Form()],
    user_manager: UserManagerDep,
    sessions: SessionServiceDep,
) -> TokenPair:
    credentials = OAuth2PasswordRequestForm(username=form.username, password=form.password)
    # The manager decides (and rate-limits); this route never checks a password itself.
    try:
        user = await user_manager.authenticate(credentials)
    except RateLimited as exc:
        exc.extra = oauth2_error(exc)
        raise
    if user is None or not user.is_active:
        raise LoginBadCredentials
    issued = await sessions.start(user, request.headers.get("user-agent"), client_address(request))
    pair = _token_pair(response, issued)
    await user_manager.on_after_login(user, request, response)
    return pair


@public_router.post(
    "/refresh",
    name="auth:jwt.refresh",
    summary="Trade a refresh token for a new token pair (the old one stops working)",
    description=(
        "Each refresh token works once. Presenting one that was already used ends its whole "
        "session (`REFRESH_TOKEN_REUSED`), so do not send two refreshes with one token in "
        "parallel. A session ends REFRESH_TOKEN_TTL seconds after login however often it is "
        "refreshed."
    ),
    response_model=TokenPair,
    responses=problem_examples(401, RefreshTokenInvalid, RefreshTokenReused),
)
async def refresh(
    body: RefreshRequest, response: Response, sessions: SessionServiceDep
) -> TokenPair:
    return _token_pair(response, await sessions.refresh(body.refresh_token))


@bearer_router.post(
    "/logout",
    name="auth:jwt.logout",
    summary="Log out: end this session (its access and refresh tokens stop working)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_UNAUTHORIZED,
)
async def logout(login: CurrentLogin, sessions: SessionServiceDep) -> None:
    await sessions.end(login.session_id, login.user.id, reason="logout")


@bearer_router.post(
    "/logout-all",
    name="auth:jwt.logout_all",
    summary="Log out everywhere: end every session of the caller",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_UNAUTHORIZED,
)
async def logout_all(login: CurrentLogin, sessions: SessionServiceDep) -> None:
    await sessions.end_all(login.user.id, reason="logout-all")
