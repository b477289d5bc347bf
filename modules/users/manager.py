"""fastapi-users' UserManager, configured: password rules, mails, audit log lines.

Hashing runs off the event loop (OffLoopHashingManager, hashing.py); logins are rate limited
per username and per client address (ratelimit.py) before any password is checked. Addresses
are canonical everywhere (emails.py, users_repository.py); mailed tokens are bound to the
account's address and password and used up by one conditional update (mail_tokens.py).

Mails are queued, never sent from here (`_queue_mail`: kind, user id, a few params; never a
token): the outbox sends them, and mails.py renders each with the `*_mail` methods below, which
mint the token at that moment.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import UUIDIDMixin, exceptions, schemas
from fastapi_users.db import BaseUserDatabase
from loguru import logger

from app.events import (
    UserDeleted,
    UserPasswordChanged,
    UserRegistered,
    UserVerified,
    publish_after_commit,
)
from app.net import client_address
from modules.integrations import MailMessage, is_password_breached, queue_mail
from modules.users import mail_tokens, users_repository
from modules.users.emails import canonical_email
from modules.users.exceptions import RateLimited, UndoEmailChangeBadToken
from modules.users.hashing import OffLoopHashingManager
from modules.users.mail_layout import compose, link_from
from modules.users.metrics import LOGIN_BAD_CREDENTIALS, LOGIN_LIMITED, LOGIN_OK
from modules.users.models import User
from modules.users.runtime import UsersRuntime
from modules.users.sessions_service import end_all_sessions_of
from modules.users.users_repository import UserDatabase

# Mail kinds of this module, rendered by mails.py when the outbox sends them.
RESET_PASSWORD_MAIL = "users.reset_password"  # noqa: S105 - a mail kind, not a secret
VERIFY_EMAIL_MAIL = "users.verify_email"
EMAIL_CHANGED_MAIL = "users.email_changed"
PASSWORD_CHANGED_MAIL = "users.password_changed"  # noqa: S105 - a mail kind, not a secret


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

    @property
    def db(self) -> UserDatabase:
        assert isinstance(self.user_db, UserDatabase), "the users module's adapter is required"
        return self.user_db

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

    # Changing one's own account -------------------------------------------------------------

    def _is_caller(self, user: User) -> bool:
        caller = getattr(self.request.state, "user_id", None) if self.request else None
        return caller is not None and caller == user.id

    async def update(
        self,
        user_update: schemas.UU,
        user: User,
        safe: bool = False,
        request: Request | None = None,
    ) -> User:
        """`safe` is fastapi-users' PATCH /users/me. There, and whenever a superuser patches
        itself through /users/{id}, a new password or a new address needs the current password
        (ASVS 6.2.3, 7.5.1): a stolen access token alone cannot take the account."""
        if not safe and self._is_caller(user):
            safe = True  # the self-service rules, whatever the route
        new_email = getattr(user_update, "email", None)
        email_changes = new_email is not None and canonical_email(new_email) != user.email
        password_changes = user_update.password is not None
        if safe and (email_changes or password_changes):
            await self._require_current_password(
                user, getattr(user_update, "current_password", None), email_changes
            )
        old_email = user.email
        updated = await super().update(user_update, user, safe=safe, request=request)
        if updated.email != old_email:
            await self._email_changed(updated, old_email)
            # Unverified for the new address until it is confirmed: mail it the link (unless a
            # superuser set the flag in the same change, or the account is inactive).
            if updated.is_active and not updated.is_verified:
                await self.request_verify(updated, request)
        if password_changes:
            await self._queue_mail(PASSWORD_CHANGED_MAIL, updated, how="changed")
        return updated

    async def _require_current_password(
        self, user: User, given: str | None, for_email: bool
    ) -> None:
        what = "email" if for_email else "password"
        log = logger.bind(user_id=str(user.id))
        if not given:
            log.warning("{} change refused: current password missing", what)
            raise exceptions.InvalidPasswordException(
                reason=f"Give your current password (current_password) to set a new {what}."
            )
        # Each wrong guess counts like a failed login of this account (429 past the limit):
        # the current password is no oracle for a stolen access token.
        limiter = self.runtime.limiter
        address = client_address(self.request) if self.request is not None else None
        try:
            attempt = await limiter.begin_login(user.email, address)
        except RateLimited as exc:
            log.bind(client=address).warning(
                "{} change refused: rate limited ({}), retry after {} s",
                what,
                exc.scope,
                exc.retry_after,
            )
            raise
        try:
            matches, _ = await self.hasher.verify_and_update(given, user.hashed_password)
        except BaseException:
            await limiter.end_login(attempt, "abandoned")
            raise
        if matches:
            await limiter.end_login(attempt, "matched")
            return
        locked = await limiter.end_login(attempt, "failed")
        log.bind(client=address).warning("{} change refused: current password wrong", what)
        if locked is not None:
            log.warning("current password locked out: too many failures ({})", locked)
        raise exceptions.InvalidPasswordException(
            reason=f"Give your current password (current_password) to set a new {what}."
        )

    async def _email_changed(self, user: User, old_email: str) -> None:
        """Tell the old address, with a link that undoes the change (see `undo_email_change`)."""
        logger.bind(user_id=str(user.id)).info("email changed")
        await self._queue_mail(EMAIL_CHANGED_MAIL, user, old_email=old_email, new_email=user.email)

    def email_changed_mail(self, user: User, old_email: str, new_email: str) -> MailMessage:
        """Rendered when sent: the undo token is minted now (its lifetime starts here)."""
        change = mail_tokens.UndoEmailChange(user.id, old_email, new_email)
        token = mail_tokens.issue_undo_token(
            self.runtime.secret, change, self.runtime.settings.email_undo_ttl
        )
        days = max(1, self.runtime.settings.email_undo_ttl // 86_400)
        return compose(
            old_email,
            "The email address of your account was changed",
            before=[
                f"The email address of your account was changed to {new_email}.",
                "If you did this, there is nothing to do.",
                "If you did not, whoever did knows your password. Within "
                f"{days} day(s), open this link to put this address back: you choose a new "
                "password there, and every session of the account ends.",
            ],
            link=("Undo the change", self._link("/auth/undo-email-change", token)),
        )

    async def undo_email_change(self, token: str, password: str) -> User:
        """The owner's way back after an email change they did not make: proven by the token
        mailed to the old address, it restores that address (verified: the mail reached it),
        sets a new password (the one used for the change is known to whoever made it) and ends
        every session. One conditional update; the token works once."""
        try:
            change = mail_tokens.read_undo_token(self.runtime.secret, token)
            user = await self.get(change.user_id)
        except (mail_tokens.InvalidMailToken, exceptions.UserNotExists):
            raise UndoEmailChangeBadToken from None
        if not user.is_active or user.email == change.old_email:
            raise UndoEmailChangeBadToken
        await self.validate_password(password, user)
        hashed = await self.hasher.hash(password)
        values = {"email": change.old_email, "is_verified": True, "hashed_password": hashed}
        try:
            won = await users_repository.update_email_unless(
                self.db.session, user.id, change.old_email, values
            )
        except exceptions.UserAlreadyExists:
            # Another account has taken the old address meanwhile.
            raise UndoEmailChangeBadToken from None
        if not won:
            raise UndoEmailChangeBadToken
        user = await users_repository.reload(self.db.session, user)
        logger.bind(user_id=str(user.id)).warning("email change undone by the old address")
        await end_all_sessions_of(self.user_db, self.runtime, user, reason="email change undone")
        await self._queue_mail(PASSWORD_CHANGED_MAIL, user, how="changed")
        publish_after_commit(self.db.session, UserPasswordChanged(user_id=user.id, how="undo"))
        return user

    # Mailed links: is the token live? (the pages check before showing a form) ------------

    async def _bound_user(self, token: str, audience: str, purpose: str) -> User | None:
        try:
            claims = mail_tokens.read_bound_token(self.runtime.secret, audience, token)
            user = await self.get(claims.user_id)
        except (mail_tokens.InvalidMailToken, exceptions.UserNotExists):
            return None
        if not mail_tokens.still_bound(self.runtime.secret, purpose, claims, user):
            return None
        return user if user.is_active else None

    async def reset_token_is_live(self, token: str) -> bool:
        audience = self.reset_password_token_audience
        return await self._bound_user(token, audience, mail_tokens.RESET_PURPOSE) is not None

    async def verify_token_user(self, token: str) -> User | None:
        audience = self.verification_token_audience
        return await self._bound_user(token, audience, mail_tokens.VERIFY_PURPOSE)

    async def undo_token_is_live(self, token: str) -> bool:
        try:
            change = mail_tokens.read_undo_token(self.runtime.secret, token)
            user = await self.get(change.user_id)
        except (mail_tokens.InvalidMailToken, exceptions.UserNotExists):
            return False
        return user.is_active and user.email != change.old_email

    # Mails --------------------------------------------------------------------------------

    def _link(self, path: str, token: str) -> str:
        """This app's page for `path` (PUBLIC_URL + path), or the team's own front-end when
        its URL template is set (RESET_PASSWORD_URL_TEMPLATE, ...)."""
        settings = self.runtime.settings
        templates = {
            "/auth/reset-password": settings.reset_password_url_template,
            "/auth/verify": settings.verify_url_template,
            "/auth/undo-email-change": settings.email_undo_url_template,
        }
        return link_from(templates[path], self.runtime.public_url, path, token)

    async def _queue_mail(self, kind: str, user: User, **params: str) -> None:
        """Queue what to send (kind, user id, params; never a token) in this unit of work: the
        mail is stored if and only if the change it tells about commits (with it, once, at the
        request's or the job's end). No app (a command): no mail."""
        app = self.app if self.app is not None else getattr(self.request, "app", None)
        if app is None:
            return
        await queue_mail(app, self.db.session, kind, str(user.id), params)

    def password_changed_mail(self, user: User, how: str) -> MailMessage:
        return compose(
            user.email,
            f"Your password was {how}",
            before=[
                f"The password of your account was {how}.",
                "If you did not do this, ask for a password reset at once "
                "(POST /auth/forgot-password) and tell your administrator.",
            ],
        )

    async def on_after_register(self, user: User, request: Request | None = None) -> None:
        logger.bind(user_id=str(user.id)).info("user registered")
        # Delivered once the request's unit of work has committed (never if it rolls back).
        publish_after_commit(self.db.session, UserRegistered(user_id=user.id, email=user.email))

    # Verification ---------------------------------------------------------------------------

    async def request_verify(self, user: User, request: Request | None = None) -> None:
        """Queues the mail for the address the account has now; mails.py drops it if the
        address changes before it is sent, and mints its token when it is."""
        if not user.is_active:
            raise exceptions.UserInactive()
        if user.is_verified:
            raise exceptions.UserAlreadyVerified()
        logger.bind(user_id=str(user.id)).info("verification requested")
        await self._queue_mail(VERIFY_EMAIL_MAIL, user, to=user.email)

    def verify_mail(self, user: User) -> MailMessage:
        """Rendered when sent: the token, bound to the address and password, is minted now."""
        token = mail_tokens.issue_bound_token(
            self.runtime.secret,
            self.verification_token_audience,
            mail_tokens.VERIFY_PURPOSE,
            user,
            self.verification_token_lifetime_seconds,
        )
        return compose(
            user.email,
            "Confirm your email address",
            before=["Confirm that this address is yours: open this link and press Confirm."],
            link=("Confirm your address", self._link("/auth/verify", token)),
            after=["If you did not create an account, ignore this mail."],
        )

    async def verify(self, token: str, request: Request | None = None) -> User:
        """The token is bound to the address (and password) it was mailed for; marking the
        account verified is one conditional update, so racing uses have one winner."""
        try:
            claims = mail_tokens.read_bound_token(
                self.runtime.secret, self.verification_token_audience, token
            )
            user = await self.get(claims.user_id)
        except (mail_tokens.InvalidMailToken, exceptions.UserNotExists):
            raise exceptions.InvalidVerifyToken() from None
        if not mail_tokens.still_bound(
            self.runtime.secret, mail_tokens.VERIFY_PURPOSE, claims, user
        ):
            raise exceptions.InvalidVerifyToken()
        if user.is_verified:
            raise exceptions.UserAlreadyVerified()
        won = await users_repository.update_if_unchanged(
            self.db.session,
            user,
            expected={
                "email": user.email,
                "hashed_password": user.hashed_password,
                "is_verified": False,
            },
            values={"is_verified": True},
        )
        if not won:
            raise exceptions.UserAlreadyVerified()
        user = await users_repository.reload(self.db.session, user)
        await self.on_after_verify(user, request)
        return user

    async def on_after_verify(self, user: User, request: Request | None = None) -> None:
        logger.bind(user_id=str(user.id)).info("user verified")
        publish_after_commit(self.db.session, UserVerified(user_id=user.id))

    # Password reset -------------------------------------------------------------------------

    async def forgot_password(self, user: User, request: Request | None = None) -> None:
        """Queues the reset mail; its token (an HMAC fingerprint, no hash: a reset request
        for a known account leaves no trace in the hashing pool) is minted when it is sent."""
        if not user.is_active:
            raise exceptions.UserInactive()
        logger.bind(user_id=str(user.id)).info("password reset requested")
        await self._queue_mail(RESET_PASSWORD_MAIL, user, to=user.email)

    def reset_mail(self, user: User) -> MailMessage:
        """Rendered when sent: the token, bound to the address and password, is minted now."""
        token = mail_tokens.issue_bound_token(
            self.runtime.secret,
            self.reset_password_token_audience,
            mail_tokens.RESET_PURPOSE,
            user,
            self.reset_password_token_lifetime_seconds,
        )
        minutes = max(1, self.reset_password_token_lifetime_seconds // 60)
        return compose(
            user.email,
            "Reset your password",
            before=[
                "Open this link to choose a new password. It works once, for "
                f"{minutes} minute(s); every session of your account ends when it is set."
            ],
            link=("Reset your password", self._link("/auth/reset-password", token)),
            after=["If you did not ask for this, ignore this mail."],
        )

    async def reset_password(
        self, token: str, password: str, request: Request | None = None
    ) -> User:
        """Bound to the address and password the token was mailed for; the new hash is written
        by one conditional update on the old one, so of racing uses of a token one wins."""
        try:
            claims = mail_tokens.read_bound_token(
                self.runtime.secret, self.reset_password_token_audience, token
            )
        except mail_tokens.InvalidMailToken:
            raise exceptions.InvalidResetPasswordToken() from None
        user = await self.get(claims.user_id)  # UserNotExists: the route's bad-token answer
        if not mail_tokens.still_bound(
            self.runtime.secret, mail_tokens.RESET_PURPOSE, claims, user
        ):
            raise exceptions.InvalidResetPasswordToken()
        if not user.is_active:
            raise exceptions.UserInactive()
        await self.validate_password(password, user)
        hashed = await self.hasher.hash(password)
        won = await users_repository.update_if_unchanged(
            self.db.session,
            user,
            expected={"email": user.email, "hashed_password": user.hashed_password},
            values={"hashed_password": hashed},
        )
        if not won:
            raise exceptions.InvalidResetPasswordToken()
        user = await users_repository.reload(self.db.session, user)
        await self.on_after_reset_password(user, request)
        return user

    async def on_after_reset_password(self, user: User, request: Request | None = None) -> None:
        logger.bind(user_id=str(user.id)).info("password reset")
        # Whoever knew the old password may hold a session: end them all (ASVS 7.4.3).
        await end_all_sessions_of(self.user_db, self.runtime, user, reason="password reset")
        await self._queue_mail(PASSWORD_CHANGED_MAIL, user, how="reset")
        publish_after_commit(self.db.session, UserPasswordChanged(user_id=user.id, how="reset"))

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
            changed = UserPasswordChanged(user_id=user.id, how="changed")
            publish_after_commit(self.db.session, changed)
        if update_dict.get("is_active") is False:
            await end_all_sessions_of(self.user_db, self.runtime, user, reason="deactivated")

    async def on_after_delete(self, user: User, request: Request | None = None) -> None:
        logger.bind(user_id=str(user.id)).info("user deleted")
        publish_after_commit(self.db.session, UserDeleted(user_id=user.id))

    # Login ----------------------------------------------------------------------------------

    async def on_after_login(
        self, user: User, request: Request | None = None, response: Response | None = None
    ) -> None:
        logger.bind(user_id=str(user.id)).info("login succeeded")

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> User | None:
        """fastapi-users' authenticate, behind the brute-force limits: a locked username or
        address gets 429 before any password is checked, even the right one. The username is
        the canonical address, for the lookup and the limiter alike."""
        limiter = self.runtime.limiter
        username = canonical_email(credentials.username)
        credentials.username = username
        address = client_address(self.request) if self.request is not None else None
        try:
            attempt = await limiter.begin_login(username, address)
        except RateLimited as exc:
            LOGIN_LIMITED.inc()
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
            LOGIN_OK.inc()
            return user

        # An inactive account with the right password counts as a failure too: its answer
        # must not differ from a wrong password's.
        locked = await limiter.end_login(attempt, "failed")
        LOGIN_BAD_CREDENTIALS.inc()
        reason = "unknown account" if user is None else "wrong password or inactive"
        log = logger.bind(user_id=user_id, client=address)
        log.info("login failed: {}", reason)
        if locked is not None:
            log.warning("login locked out: too many failures ({})", locked)
        return None
