"""The users module's mails, built when the outbox sends them (modules/integrations/outbox.py).

The manager queues only (kind, user id, a few params, never a token). Here each kind loads the
account again and the manager's `*_mail` method mints the token at send time: no token is ever
stored, and its lifetime starts when the mail leaves. A mail that no longer applies is dropped
(and logged by the outbox): the account is gone; for a reset or a verification, the account is
inactive or its address is no longer the one the mail was asked for (a token is never mailed
to an address other than the one it was requested for), or it is verified already.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI

from app.database import Database
from app.module import ModuleContext
from modules.integrations import MailMessage, register_mail_renderer
from modules.users import runtime as users_runtime
from modules.users.manager import (
    EMAIL_CHANGED_MAIL,
    PASSWORD_CHANGED_MAIL,
    RESET_PASSWORD_MAIL,
    VERIFY_EMAIL_MAIL,
    UserManager,
)
from modules.users.models import User
from modules.users.runtime import UsersRuntime
from modules.users.settings import UsersSettings
from modules.users.users_repository import UserDatabase

Build = Callable[[UserManager, User, Mapping[str, str]], MailMessage | None]


def _reset(manager: UserManager, user: User, params: Mapping[str, str]) -> MailMessage | None:
    if not user.is_active or user.email != params.get("to"):
        return None
    return manager.reset_mail(user)


def _verify(manager: UserManager, user: User, params: Mapping[str, str]) -> MailMessage | None:
    if not user.is_active or user.is_verified or user.email != params.get("to"):
        return None
    return manager.verify_mail(user)


def _email_changed(
    manager: UserManager, user: User, params: Mapping[str, str]
) -> MailMessage | None:
    return manager.email_changed_mail(user, params["old_email"], params["new_email"])


def _password_changed(
    manager: UserManager, user: User, params: Mapping[str, str]
) -> MailMessage | None:
    return manager.password_changed_mail(user, params["how"])


async def _render(
    app: FastAPI, runtime: UsersRuntime, build: Build, ref: str, params: Mapping[str, str]
) -> MailMessage | None:
    try:
        user_id = uuid.UUID(ref)
    except ValueError:
        return None
    database: Database = app.state.database
    async with database.sessionmaker() as session:
        manager = UserManager(UserDatabase(session), runtime, app)
        user = await manager.user_db.get(user_id)
        return None if user is None else build(manager, user, params)


KINDS: dict[str, Build] = {
    RESET_PASSWORD_MAIL: _reset,
    VERIFY_EMAIL_MAIL: _verify,
    EMAIL_CHANGED_MAIL: _email_changed,
    PASSWORD_CHANGED_MAIL: _password_changed,
}


def register_mails(app: FastAPI, runtime: UsersRuntime) -> None:
    for kind, build in KINDS.items():
        register_mail_renderer(app, kind, partial(_render, app, runtime, build))


@asynccontextmanager
async def lifespan(context: ModuleContext[UsersSettings]) -> AsyncIterator[None]:
    """The users module's lifespan: its runtime, then its mail renderers."""
    async with users_runtime.lifespan(context):
        register_mails(context.app, users_runtime.get_app_runtime(context.app))
        yield
