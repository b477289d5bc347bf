"""One unit of work per request (app/database.py): one commit, before the answer; nothing of a
failed request stays written or gets published, except the writes of a CommitsBeforeRaising
error (refresh-token reuse).

The failure is a real one, provoked in the database: a test-only trigger makes the COMMIT of any
transaction that ended a login session fail (PostgreSQL: a deferred constraint trigger; SQLite:
a row that breaks a deferred foreign key). The password change writes the new password first,
ends the other sessions next, and the commit fails last: all of it must be undone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.database import is_sqlite
from app.events import Event, SessionRevoked, UserPasswordChanged, on
from tests.helpers import PASSWORD, assert_problem, bearer, login, register

EMAIL = "uow@example.com"
NEW_PASSWORD = "another long passphrase for uow"

SQLITE_INSTALL = [
    "CREATE TABLE uow_probe"
    " (ref INTEGER REFERENCES uow_missing (id) DEFERRABLE INITIALLY DEFERRED)",
    "CREATE TABLE uow_missing (id INTEGER PRIMARY KEY)",
    # The row breaks the deferred foreign key: the statement succeeds, the COMMIT fails.
    "CREATE TRIGGER uow_fail_at_commit AFTER UPDATE ON login_session "
    "BEGIN INSERT INTO uow_probe (ref) VALUES (1); END",
]
SQLITE_REMOVE = [
    "DROP TRIGGER IF EXISTS uow_fail_at_commit",
    "DROP TABLE IF EXISTS uow_probe",
    "DROP TABLE IF EXISTS uow_missing",
]
POSTGRES_INSTALL = [
    "CREATE FUNCTION uow_fail() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'provoked commit failure'; END $$",
    "CREATE CONSTRAINT TRIGGER uow_fail_at_commit AFTER UPDATE ON login_session "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION uow_fail()",
]
POSTGRES_REMOVE = [
    "DROP TRIGGER IF EXISTS uow_fail_at_commit ON login_session",
    "DROP FUNCTION IF EXISTS uow_fail()",
]


async def _run(app: FastAPI, statements: list[str]) -> None:
    async with app.state.database.engine.begin() as connection:
        for statement in statements:
            await connection.execute(text(statement))


@asynccontextmanager
async def failing_commits(app: FastAPI) -> AsyncIterator[None]:
    """Inside the block, a transaction that ended a login session fails at its COMMIT."""
    sqlite = is_sqlite(app.state.database.url)
    await _run(app, SQLITE_INSTALL if sqlite else POSTGRES_INSTALL)
    try:
        yield
    finally:
        # The PostgreSQL test database is shared by the suite: leave no trigger behind.
        await _run(app, SQLITE_REMOVE if sqlite else POSTGRES_REMOVE)


@pytest.fixture
def published(app: FastAPI) -> list[Event]:
    seen: list[Event] = []

    async def record(event: Event) -> None:
        seen.append(event)

    for kind in (UserPasswordChanged, SessionRevoked):
        app.state.events.subscribe(on(kind, record))
    return seen


async def test_a_failed_commit_of_a_password_change_undoes_both_writes_and_publishes_nothing(
    app: FastAPI, client: httpx.AsyncClient, published: list[Event]
) -> None:
    await register(client, EMAIL)
    caller, other = await login(client, EMAIL), await login(client, EMAIL)

    async with failing_commits(app):
        changed = await client.patch(
            "/users/me",
            headers=bearer(caller["access_token"]),
            json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        )
    # The commit runs before the answer: its failure is the answer, never a 200.
    assert_problem(changed, 500)
    assert published == []
    # Neither the new password nor the end of the other session was kept.
    await login(client, EMAIL, PASSWORD)
    rejected = await client.post(
        "/auth/jwt/login", data={"username": EMAIL, "password": NEW_PASSWORD}
    )
    assert rejected.status_code == 400
    me = await client.get("/users/me", headers=bearer(other["access_token"]))
    assert me.status_code == 200


async def test_the_same_password_change_commits_both_and_publishes_after(
    client: httpx.AsyncClient, published: list[Event]
) -> None:
    """The control: without the provoked failure, both writes stand and the events go out."""
    await register(client, EMAIL)
    caller, other = await login(client, EMAIL), await login(client, EMAIL)
    changed = await client.patch(
        "/users/me",
        headers=bearer(caller["access_token"]),
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    assert [event.name for event in published] == ["session.revoked", "user.password_changed"]
    await login(client, EMAIL, NEW_PASSWORD)
    me = await client.get("/users/me", headers=bearer(other["access_token"]))
    assert_problem(me, 401, "UNAUTHORIZED")


async def test_refresh_token_reuse_keeps_the_revocation_although_it_answers_401(
    client: httpx.AsyncClient, published: list[Event]
) -> None:
    """RefreshTokenReused is CommitsBeforeRaising: the request fails, its revocation stands."""
    await register(client, EMAIL)
    first = await login(client, EMAIL)
    rotated = await client.post("/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.text
    newest = rotated.json()

    reused = await client.post("/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]})
    assert_problem(reused, 401, "REFRESH_TOKEN_REUSED")

    # Rolled back, the session would live on: the newest tokens would still work.
    me = await client.get("/users/me", headers=bearer(newest["access_token"]))
    assert_problem(me, 401, "UNAUTHORIZED")
    again = await client.post("/auth/jwt/refresh", json={"refresh_token": newest["refresh_token"]})
    assert_problem(again, 401, "REFRESH_TOKEN_INVALID")
    assert [event.name for event in published] == ["session.revoked"]
