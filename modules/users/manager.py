"""fastapi-users' UserManager, configured: password rules, mails, audit log lines.

Hashing runs off the event loop (OffLoopHashingManager, hashing.py); logins are rate limited
per username and per client address (ratelimit.py) before any password is checked.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import UUIDIDMixin, exceptions, schemas
from fastapi_users.db import BaseUserDatabase
from loguru import logger

from app.net import client_address
from modules.integrations import MailMessage, is_password_breached, send_mail_later
from modules.users.exceptions import RateLimited
from modules.users.hashing import OffLoopHashingManager
from modules.users.models import User
from modules.users.runtime import UsersRuntime
from modules.users.sessions_service import end_all_sessions_of


class UserManager(UUIDIDMixin, OffLoopHashingManager[User, uuid.UUID]):
    def __init__(
        self,
        user_db: BaseUserDatabase[User, uuid.UUID],
        runtime: UsersRuntime,
        app: FastAPI | None = None,
        request: Request | None = None,
    ):
        # The synchronous helper refuses to hash on the loop; the manager awaits `hasher`.
        super().__init__(user_db, password_helper=runtime.hasher.guard)
        self.hasher = runtime.hasher
        self.runtime = runtime
        self.app = app  # for the breached-password check (validate_password has no request)
        # The request being served (None in commands): the rate limiter reads its address.
        self.request = request
        self.reset_password_token_secret = runtime.secret
        self.reset_password_token_lifetime_seconds = runtime.settings.reset_token_ttl
        self.verification_token_secret = runtime.secret
        self.verification_token_lifetime_seconds = runtime.settings.verify_token_ttl

    async def validate_password(self, password: str, user: schemas.UC | User) -> None:
        reason = await self.runtime.policy.problems(password, getattr(user, "email", None))
        if reason is not None:
            raise exceptions.InvalidPasswordException(reason=reason)
        # Last, so only passwords that pass the local rules cost a call; None (check skipped:
        # off, upstream down, circuit open) lets the password through.
        if self.app is not None and await is_password_breached(self.app, password):
            raise exceptions.InvalidPasswordException(
                reason="This password has appeared in known data breaches; choose another one."
            )

    async def update(
        self,
        user_update: schemas.UU,
        user: User,
        safe: bool = False,
        request: Request | None = None,
    ) -> User:
        """`safe` is fastapi-users' PATCH /users/me: changing one's own password needs the
        current one (ASVS 6.2.3), so a stolen access token alone cannot take the account."""
        if safe and user_update.password is not None:
            current = getattr(user_update, "current_password", None)
            matches = (
                current is not None
                and (await self.hasher.verify_and_update(current, user.hashed_password))[0]
            )
            if not matches:
                logger.bind(user_id=str(user.id)).warning(
                    "password change refused: current password missing or wrong"
                )
                raise exceptions.InvalidPasswordException(
                    reason="Give your current password (current_password) to set a new one."
                )
        return await super().update(user_update, user, safe=safe, request=request)

    def _link(self, path: str, token: str) -> str:
        return f"{self.runtime.public_url}{path}?{urlencode({'token': token})}"

    async def on_after_register(self, user: User, request: Request | None = None) -> None:
        logger.bind(user_id=str(user.id)).info("user registered")

    async def on_after_request_verify(
        self, user: User, token: str, request: Request | None = None
    ) -> None:
        logger.bind(user_id=str(user.id)).info("verification requested")
        if request is not None:
            send_mail_later(
                request.app,
                MailMessage(
                    to=user.email,
                    subject="Confirm your email address",
                    body=(
                        "Confirm your address by sending this token to POST /auth/verify:\n"
                        f"{self._link('/auth/verify', token)}\n"
                    ),
                ),
            )

    async def on_after_verify(self, user: User, request: Request | None = None) -> None:
        logger.bind(user_id=str(user.id)).info("user verified")

    async def on_after_forgot_password(
        self, user: User, token: str, request: Request | None = None
    ) -> None:
        logger.bind(user_id=str(user.id)).info("password reset requested")
        if request is not None:
            send_mail_later(
                request.app,
                MailMessage(
                    to=user.email,
                    subject="Reset your password",
                    body=(
                        "Reset your password by sending this token and a new password "
                        "to POST /auth/reset-password:\n"
                        f"{self._link('/auth/reset-password', token)}\n"
                        "If you did not ask for this, ignore this mail.\n"
                    ),
                ),
            )

    async def on_after_reset_password(self, user: User, request: Request | None = None) -> None:
        logger.bind(user_id=str(user.id)).info("password reset")
        # Whoever knew the old password may hold a session: end them all (ASVS 7.4.3).
        await end_all_sessions_of(self.user_db, self.runtime, user, reason="password reset")

    async def on_after_update(
        self, user: User, update_dict: dict[str, Any], request: Request | None = None
    ) -> None:
        # update_dict holds the new password in clear: never log it.
        if update_dict.get("password") is not None:
            # The other sessions end (ASVS 7.4.3); the one the change was made from goes on.
            caller_session = getattr(request.state, "session_id", None) if request else None
            await end_all_sessions_of(
                self.user_db, self.runtime, user, reason="password changed", keep=caller_session
            )
        if update_dict.get("is_active") is False:
            await end_all_sessions_of(self.user_db, self.runtime, user, reason="deactivated")

    async def on_after_login(
        self, user: User, request: Request | None = None, response: Response | None = None
    ) -> None:
        logger.bind(user_id=str(user.id)).info("login succeeded")

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> User | None:
        """fastapi-users' authenticate, behind the brute-force limits: a locked username or
        address gets 429 before any password is checked, even the right one."""
        limiter = self.runtime.limiter
        username = credentials.username
        address = client_address(self.request) if self.request is not None else None
        try:
            attempt = await limiter.begin_login(username, address)
        except RateLimited as exc:
            logger.bind(client=address).warning(
                "login refused: rate limited ({}), retry after {} s", exc.scope, exc.retry_after
            )
            raise

        try:
            check = await self.check_credentials(credentials)
        except BaseException:
            await limiter.end_login(attempt, "abandoned")  # not a failure: free the slot
            raise
        user = check.user
        user_id = str(user.id) if user is not None else None
        if check.password_matches and user is not None and user.is_active:
            await limiter.end_login(attempt, "succeeded")
            return user

        # An inactive account with the right password counts as a failure too: its answer
        # must not differ from a wrong password's.
        locked = await limiter.end_login(attempt, "failed")
        reason = "unknown account" if user is None else "wrong password or inactive"
        log = logger.bind(user_id=user_id, client=address)
        log.info("login failed: {}", reason)
        if locked is not None:
            log.warning("login locked out: too many failures ({})", locked)
        return None
