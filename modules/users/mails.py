"""The users module's mails, built when the outbox sends them (modules/integrations/outbox.py).

The manager queues only (kind, user id). Here each kind loads the account again and mints its
token at send time, so no token is ever stored and its lifetime starts when the mail leaves. A
mail that no longer applies (account gone or inactive, address already verified) is dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase

from app.database import Database
from app.module import ModuleContext
from modules.integrations import MailMessage, register_mail_renderer
from modules.users import runtime as users_runtime
from modules.users.manager import RESET_PASSWORD_MAIL, VERIFY_EMAIL_MAIL, UserManager
from modules.users.models import User
from modules.users.runtime import UsersRuntime

Build = Callable[[UserManager, User], Awaitable[MailMessage | None]]


async def _reset(manager: UserManager, user: User) -> MailMessage | None:
    return await manager.reset_mail(user)


async def _verify(manager: UserManager, user: User) -> MailMessage | None:
    return None if user.is_verified else await manager.verify_mail(user)


async def _render(
    app: FastAPI, runtime: UsersRuntime, build: Build, ref: str, params: Mapping[str, str]
) -> MailMessage | None:
    try:
        user_id = uuid.UUID(ref)
    except ValueError:
        return None
    database: Database = app.state.database
    async with database.sessionmaker() as session:
        manager = UserManager(SQLAlchemyUserDatabase[User, uuid.UUID](session, User), runtime, app)
        user = await manager.user_db.get(user_id)
        if user is None or not user.is_active:
            return None
        return await build(manager, user)


def register_mails(app: FastAPI, runtime: UsersRuntime) -> None:
    register_mail_renderer(app, RESET_PASSWORD_MAIL, partial(_render, app, runtime, _reset))
    register_mail_renderer(app, VERIFY_EMAIL_MAIL, partial(_render, app, runtime, _verify))


@asynccontextmanager
async def lifespan(context: ModuleContext) -> AsyncIterator[None]:
    """The users module's lifespan: its runtime, then its mail renderers."""
    async with users_runtime.lifespan(context):
        register_mails(context.app, users_runtime.get_app_runtime(context.app))
        yield
