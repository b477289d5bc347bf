"""Steps the roles tests share: a superuser made in the database, a user with a token."""

from __future__ import annotations

from typing import Any

import httpx

from app.database import Database
from tests.helpers import bearer, grant, login, make_superuser, register

__all__ = ["account", "grant", "make_superuser", "superuser"]


async def account(client: httpx.AsyncClient, email: str) -> tuple[dict[str, Any], dict[str, str]]:
    """A registered account and its bearer header."""
    user = await register(client, email)
    return user, bearer((await login(client, email))["access_token"])


async def superuser(
    client: httpx.AsyncClient, database: Database, email: str = "root@example.com"
) -> tuple[dict[str, Any], dict[str, str]]:
    user = await register(client, email)
    await make_superuser(database, email)
    return user, bearer((await login(client, email))["access_token"])
