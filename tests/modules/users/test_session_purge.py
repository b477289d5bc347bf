"""The purge of ended login sessions: `python -m app purge` (a real process) and the scheduled
purge of a serving app, on SQLite and (make test-postgres) PostgreSQL. After sessions expire
or are revoked, no row older than SESSION_RETENTION is left, and reuse detection still works
for the live sessions."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import select, update

from app.database import Database, unit_of_work
from app.loader import LoadedModule
from app.locks import exclusive
from app.purge import LOCK_NAME, purge_jobs, purge_once
from app.settings import CoreSettings
from modules.users import module as users_module
from modules.users.models import LoginSession, RotatedRefreshToken, User
from modules.users.settings import UsersSettings
from tests.app.processes import run
from tests.conftest import TEST_MODULES, TEST_SECRET
from tests.helpers import assert_problem, bearer, login, register
from tests.modules.users.apps import client_for, running_app

EMAIL = "ada@example.com"
RETENTION = 60


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/jwt/refresh", json={"refresh_token": token})


async def _add_ended_sessions(database: Database, user_id: uuid.UUID, count: int) -> None:
    """Sessions that ended long ago (half revoked, half expired), written directly: only
    their rows matter here, not how they ended."""
    long_ago = datetime.now(UTC) - timedelta(days=40)
    async with unit_of_work(database) as db:
        for n in range(count):
            db.add(
                LoginSession(
                    user_id=user_id,
                    created_at=long_ago,
                    last_used_at=long_ago,
                    expires_at=long_ago + timedelta(days=1 if n % 2 else 30),
                    revoked_at=long_ago + timedelta(hours=1) if n % 2 == 0 else None,
                    refresh_token_hash=_hash(f"ended-{n}-{uuid.uuid4()}"),
                )
            )


async def _sessions(database: Database) -> dict[uuid.UUID, LoginSession]:
    async with database.sessionmaker() as db:
        return {s.id: s for s in await db.scalars(select(LoginSession))}


async def _rotated(database: Database) -> set[str]:
    async with database.sessionmaker() as db:
        return set(await db.scalars(select(RotatedRefreshToken.token_hash)))


def _as_utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _assert_nothing_older_than_retention(sessions: dict[uuid.UUID, LoginSession]) -> None:
    cutoff = datetime.now(UTC) - timedelta(seconds=RETENTION)
    for session in sessions.values():
        ended = min(
            t for t in (_as_utc(session.revoked_at), _as_utc(session.expires_at)) if t is not None
        )
        assert ended > cutoff, f"session {session.id} ended at {ended}, before {cutoff}"


def _purge_command(settings: CoreSettings, tmp_path: Path, *args: str) -> str:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": settings.database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "MODULES": ",".join(TEST_MODULES),
        "SESSION_RETENTION": str(RETENTION),
        "LOG_FORMAT": "json",
    }
    result = run(["app", "purge", *args], env)
    assert result.returncode == 0, result.stderr
    return result.stderr


async def test_the_purge_command_leaves_nothing_older_than_the_retention_and_reuse_detection_works(
    settings: CoreSettings, tmp_path: Path
) -> None:
    users = UsersSettings(session_retention=RETENTION)
    async with running_app(settings, users) as app, client_for(app) as client:
        database: Database = app.state.database
        await register(client, EMAIL)
        rotated_live = await login(client, EMAIL)  # refreshed twice: its first token is stale
        untouched_live = await login(client, EMAIL)
        logged_out = await login(client, EMAIL)  # revoked just now: within the retention
        purged_soon = await login(client, EMAIL)  # revoked two hours ago
        expired_recently = await login(client, EMAIL)  # expired 10 s ago: within the retention
        logged_out_later = (await _refresh(client, logged_out["refresh_token"])).json()
        second = (await _refresh(client, rotated_live["refresh_token"])).json()
        third = (await _refresh(client, second["refresh_token"])).json()
        assert (
            await client.post("/auth/jwt/logout", headers=bearer(logged_out_later["access_token"]))
        ).status_code == 204

        sids = {
            name: await _session_id(client, pair)
            for name, pair in {"rotated_live": third, "untouched_live": untouched_live}.items()
        }
        now = datetime.now(UTC)
        async with database.sessionmaker() as db:
            user_id = (await db.scalars(select(User.__table__.c["id"]))).one()
            by_hash = {s.refresh_token_hash: s.id for s in await db.scalars(select(LoginSession))}
        ids = {
            name: by_hash[_hash(pair["refresh_token"])]
            for name, pair in {
                "logged_out": logged_out_later,
                "purged_soon": purged_soon,
                "expired_recently": expired_recently,
            }.items()
        }
        async with unit_of_work(database) as db:
            await db.execute(
                update(LoginSession)
                .where(LoginSession.id == ids["purged_soon"])
                .values(revoked_at=now - timedelta(hours=2))
            )
            await db.execute(
                update(LoginSession)
                .where(LoginSession.id == ids["expired_recently"])
                .values(expires_at=now - timedelta(seconds=10))
            )
            # Rotated old-format tokens (from before generation-carrying refresh tokens): the
            # live session's is what reuse detection needs; the ended one's is not.
            db.add(
                RotatedRefreshToken(
                    token_hash=_hash("legacy-live"),
                    session_id=sids["untouched_live"],
                    rotated_at=now,
                )
            )
            db.add(
                RotatedRefreshToken(
                    token_hash=_hash("legacy-ended"), session_id=ids["purged_soon"], rotated_at=now
                )
            )
        await _add_ended_sessions(database, user_id, 4)
        assert len(await _sessions(database)) == 9

        # Five sessions ended before the retention: batches of two delete 2, 2, 1.
        output = _purge_command(settings, tmp_path, "--batch-size", "2")
        assert "purged users.sessions: 5 row(s) in 3 batch(es)" in output, output

        left = await _sessions(database)
        assert set(left) == {
            sids["rotated_live"],
            sids["untouched_live"],
            ids["logged_out"],
            ids["expired_recently"],
        }
        _assert_nothing_older_than_retention(left)
        assert await _rotated(database) == {_hash("legacy-live")}

        # Nothing left to purge: another run (here in-process) deletes nothing.
        jobs = purge_jobs([LoadedModule(module=users_module, settings=users)])
        (again,) = await purge_once(database, jobs, batch_size=2) or []
        assert (again.deleted, again.batches) == (0, 1)

        # Reuse detection still works for the live sessions, both kinds of stale token.
        assert_problem(
            await _refresh(client, rotated_live["refresh_token"]), 401, "REFRESH_TOKEN_REUSED"
        )
        assert (
            await client.get("/users/me", headers=bearer(third["access_token"]))
        ).status_code == 401
        assert_problem(await _refresh(client, "legacy-live"), 401, "REFRESH_TOKEN_REUSED")
        assert (
            await client.get("/users/me", headers=bearer(untouched_live["access_token"]))
        ).status_code == 401
        # A session ended within the retention still reports reuse; a purged one cannot.
        assert_problem(
            await _refresh(client, logged_out["refresh_token"]), 401, "REFRESH_TOKEN_REUSED"
        )
        assert_problem(
            await _refresh(client, purged_soon["refresh_token"]), 401, "REFRESH_TOKEN_INVALID"
        )


async def _session_id(client: httpx.AsyncClient, pair: dict[str, str]) -> uuid.UUID:
    response = await client.get("/users/me/sessions", headers=bearer(pair["access_token"]))
    assert response.status_code == 200, response.text
    (current,) = [s for s in response.json() if s["current"]]
    return uuid.UUID(current["id"])


async def test_a_serving_app_purges_on_its_schedule_and_skips_while_another_process_does(
    settings: CoreSettings,
) -> None:
    scheduled = settings.model_copy(update={"purge_interval": 0.2, "purge_batch_size": 3})
    users = UsersSettings(session_retention=RETENTION)
    async with running_app(scheduled, users) as app, client_for(app) as client:
        database: Database = app.state.database
        await register(client, EMAIL)
        live = await login(client, EMAIL)
        async with database.sessionmaker() as db:
            user_id = (await db.scalars(select(User.__table__.c["id"]))).one()

        # Another process (its own connection, its own lock) is purging: this app skips.
        other = Database(settings.database_url)
        try:
            async with exclusive(other, LOCK_NAME) as acquired:
                assert acquired
                await _add_ended_sessions(database, user_id, 7)
                await asyncio.sleep(1.5)  # several rounds of the schedule
                assert len(await _sessions(database)) == 8
        finally:
            await other.dispose()

        deadline = time.monotonic() + 15
        while len(await _sessions(database)) > 1:
            assert time.monotonic() < deadline, "the scheduled purge did not run"
            await asyncio.sleep(0.1)
        assert (
            await client.get("/users/me", headers=bearer(live["access_token"]))
        ).status_code == 200
        assert (await _refresh(client, live["refresh_token"])).status_code == 200


async def test_a_login_keeps_its_users_ended_sessions_for_the_retention(
    settings: CoreSettings,
) -> None:
    users = UsersSettings(session_retention=RETENTION)
    async with running_app(settings, users) as app, client_for(app) as client:
        database: Database = app.state.database
        await register(client, EMAIL)
        first = await login(client, EMAIL)
        await client.post("/auth/jwt/logout", headers=bearer(first["access_token"]))
        async with database.sessionmaker() as db:
            user_id = (await db.scalars(select(User.__table__.c["id"]))).one()
        await _add_ended_sessions(database, user_id, 2)

        await login(client, EMAIL)

        left = await _sessions(database)
        # The two that ended long ago are gone; the logout of a moment ago is kept.
        assert len(left) == 2
        assert [s.refresh_token_hash for s in left.values() if s.revoked_at is not None] == [
            _hash(first["refresh_token"])
        ]
