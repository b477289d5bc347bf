"""What the users module's lifespan prepares once, read by its dependencies per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Request

from app.logging import register_secret
from app.module import ModuleContext
from modules.users.passwords import PasswordPolicy
from modules.users.settings import UsersSettings


@dataclass(frozen=True)
class UsersRuntime:
    settings: UsersSettings
    secret: str
    public_url: str
    policy: PasswordPolicy


@asynccontextmanager
async def lifespan(context: ModuleContext) -> AsyncIterator[None]:
    settings = context.settings
    assert isinstance(settings, UsersSettings)
    secret = context.core.signing_key
    register_secret(secret)
    context.app.state.users = UsersRuntime(
        settings=settings,
        secret=secret,
        public_url=context.core.public_url.rstrip("/"),
        policy=PasswordPolicy(settings.password_min_length, settings.password_max_length),
    )
    yield


def get_runtime(request: Request) -> UsersRuntime:
    runtime: UsersRuntime = request.app.state.users
    return runtime
