"""users_0003 on an existing database: addresses are folded to their canonical form, or the
migration refuses (naming the accounts) when two accounts fold to one address. On SQLite and,
in a database of its own, on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi_users_db_sqlalchemy.generics import GUID
from sqlalchemy import column, insert, select, table

from app import migrations
from app.database import create_engine
from app.factory import create_app
from app.settings import CoreSettings
from modules.users.models import User
from tests.conftest import TEST_MODULES, TEST_SECRET
from tests.helpers import PASSWORD, assert_problem, login

USER_TABLE = User.metadata.tables["user"]
# The table as users_0002 left it: the model's later columns (created_at, whose default the
# model would insert) do not exist yet.
OLD_USER_TABLE = table(
    "user",
    column("id", GUID()),
    *(column(name) for name in ("email", "hashed_password", "is_active")),
    *(column(name) for name in ("is_superuser", "is_verified")),
)

# argon2id of tests.helpers.PASSWORD: the accounts were made by the code before users_0003.
HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$THWjaZVtIytDFUr6NdJ+/g"
    "$PxHIWtz8qkT3uPwR65o6PX1kVvXfwJHADNFpP1ZAHXo"
)


async def _database_before_0003(url: str, emails: list[str]) -> None:
    # Alembic's env runs its own event loop: keep it off this one.
    await asyncio.to_thread(migrations.upgrade, url, TEST_MODULES, "users_0002")
    engine = create_engine(url)
    async with engine.begin() as connection:
        for email in emails:
            await connection.execute(
                insert(OLD_USER_TABLE).values(
                    id=uuid.uuid4(),
                    email=email,
                    hashed_password=HASH,
                    is_active=True,
                    is_superuser=False,
                    is_verified=False,
                )
            )
    await engine.dispose()


async def _stored_emails(url: str) -> list[str]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        emails = list((await connection.scalars(select(USER_TABLE.c.email))).all())
    await engine.dispose()
    return sorted(emails)


async def test_existing_addresses_are_folded_and_then_log_in(
    empty_database: str, tmp_path: Path
) -> None:
    url = empty_database
    await _database_before_0003(url, ["Ada@\uff25xample.com", "bob@example.com", "CAROL@X.ORG"])
    await asyncio.to_thread(migrations.upgrade, url, TEST_MODULES)
    assert await _stored_emails(url) == ["ada@example.com", "bob@example.com", "carol@x.org"]

    settings = CoreSettings(
        environment="test", database_url=url, secret_key=TEST_SECRET, data_dir=tmp_path
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await login(client, "ADA@example.com", PASSWORD)
            await login(client, "Carol@X.org", PASSWORD)
            again = await client.post(
                "/auth/register", json={"email": "Ada@example.COM", "password": PASSWORD}
            )
            assert_problem(again, 400, "REGISTER_USER_ALREADY_EXISTS")


async def test_accounts_that_fold_to_one_address_stop_the_migration(empty_database: str) -> None:
    url = empty_database
    await _database_before_0003(url, ["Dup@example.com", "dup@example.com", "solo@example.com"])
    with pytest.raises(Exception, match="share one email address") as raised:
        await asyncio.to_thread(migrations.upgrade, url, TEST_MODULES)
    assert "Merge or delete" in str(raised.value)
    assert "dup@example.com" not in str(raised.value).lower()  # ids, not addresses
    # Nothing was changed: the operator fixes the data and runs it again.
    assert await _stored_emails(url) == ["Dup@example.com", "dup@example.com", "solo@example.com"]
