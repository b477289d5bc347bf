"""The auth cache (modules/users/auth_cache.py) on, over real HTTP against real servers
(`python -m app serve`): a request that starts after a revocation returned is refused, in the
process that revoked and in another one sharing Redis.

Each test first shows the cache is really serving: a session ended behind the app's back (a
direct UPDATE in the database file) is still accepted, which only a cached answer can do. So
every "refused at once" below is a cached entry outdated by the revocation, not a database read
that happened anyway.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from app.settings import CoreSettings
from modules.users.settings import UsersSettings
from tests.app.processes import start
from tests.conftest import TEST_SECRET
from tests.helpers import PASSWORD, bearer, login, register
from tests.modules.users.apps import client_for, running_app
from tests.redis_server import RedisServer, throwaway_redis

ROOT = Path(__file__).resolve().parents[3]
NEW_PASSWORD = "another horse battery staple"
ROOT_EMAIL = "root@example.com"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cache.db",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
        "LOGINS_PER_ADDRESS": "100000",
        "REGISTRATIONS_PER_ADDRESS": "100000",
    }
    env.update(extra)
    return env


def _prepare(env: dict[str, str]) -> None:
    run = [sys.executable, "-m", "app"]
    subprocess.run([*run, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run(
        [*run, "create-superuser", "--email", ROOT_EMAIL],
        cwd=ROOT,
        env=env,
        input=PASSWORD + "\n",
        text=True,
        check=True,
        capture_output=True,
    )


@contextmanager
def _server(env: dict[str, str], log: Path) -> Iterator[str]:
    """`python -m app serve` (one worker) on a free port; yields its base URL."""
    with start(["app", "serve", "--no-migrate"], env, log) as running:
        yield running.base_url


def _end_sessions_behind_the_apps_back(database: Path, email: str) -> None:
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE login_session SET revoked_at = CURRENT_TIMESTAMP "
            'WHERE user_id IN (SELECT id FROM "user" WHERE email = ?)',
            (email,),
        )


async def _account(client: httpx.AsyncClient, email: str, sessions: int = 1) -> list[str]:
    """Register `email`; log in `sessions` times; the access tokens."""
    registered = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert registered.status_code == 201, registered.text
    return [await _login(client, email) for _ in range(sessions)]


async def _login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    form = {"username": email, "password": password}
    answer = await client.post("/auth/jwt/login", data=form)
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def _me(client: httpx.AsyncClient, token: str) -> int:
    return (await client.get("/users/me", headers=bearer(token))).status_code


async def _user_id(client: httpx.AsyncClient, token: str) -> str:
    answer = await client.get("/users/me", headers=bearer(token))
    assert answer.status_code == 200
    user_id: str = answer.json()["id"]
    return user_id


async def _shows_the_cache_serves(client: httpx.AsyncClient, database: Path, email: str) -> None:
    """A session ended in the database file, not through the app: still accepted (cached)."""
    token = (await _account(client, email))[0]
    assert await _me(client, token) == 200
    _end_sessions_behind_the_apps_back(database, email)
    assert await _me(client, token) == 200, "the auth cache is not serving"


async def _revoke_while_hammered(
    client: httpx.AsyncClient, token: str, revoke: httpx.Request, expected: int
) -> None:
    """Four clients call GET /users/me with `token` without pause while `revoke` is sent: every
    call that started after the revocation returned is refused."""
    calls: list[tuple[float, int]] = []
    stop = asyncio.Event()

    async def hammer() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                calls.append((started, await _me(client, token)))
            except httpx.TransportError:
                # A keep-alive connection the server closed as it was reused (its idle
                # timeout): no answer, nothing to check; the next call opens a new one.
                continue

    hammers = [asyncio.create_task(hammer()) for _ in range(4)]
    await asyncio.sleep(0.3)
    answer = await client.send(revoke)
    returned = time.monotonic()
    assert answer.status_code == expected, answer.text
    # Until enough calls have started after it (a loaded host makes every call slow).
    deadline = time.monotonic() + 60
    while sum(started > returned for started, _ in calls) < 8 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*hammers)
    before = [status for started, status in calls if started < returned]
    after = [status for started, status in calls if started > returned]
    assert 200 in before, "the token was never accepted before the revocation"
    assert after, "no call started after the revocation returned"
    assert set(after) == {401}, f"accepted after the revocation returned: {after}"


# --- One process ---------------------------------------------------------------------------


@pytest.fixture
def one_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    env = _env(tmp_path)
    _prepare(env)
    with _server(env, tmp_path / "server.log") as base:
        yield base, tmp_path / "cache.db"


async def test_every_revocation_is_immediate_in_one_process(
    one_server: tuple[str, Path],
) -> None:
    base, database = one_server
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await _shows_the_cache_serves(client, database, "behind@example.com")
        root = await _login(client, ROOT_EMAIL)

        # Logout: its token.
        token = (await _account(client, "logout@example.com"))[0]
        request = client.build_request("POST", "/auth/jwt/logout", headers=bearer(token))
        await _revoke_while_hammered(client, token, request, 204)

        # Logout-all, made from another session.
        first, second = await _account(client, "all@example.com", sessions=2)
        request = client.build_request("POST", "/auth/jwt/logout-all", headers=bearer(second))
        await _revoke_while_hammered(client, first, request, 204)

        # One session ended from the session list.
        first, second = await _account(client, "one@example.com", sessions=2)
        listed = await client.get("/users/me/sessions", headers=bearer(second))
        others = [s["id"] for s in listed.json() if not s["current"]]
        assert len(others) == 1
        request = client.build_request(
            "DELETE", f"/users/me/sessions/{others[0]}", headers=bearer(second)
        )
        await _revoke_while_hammered(client, first, request, 204)

        # Password change: the other sessions end; the one it was made from goes on.
        first, second = await _account(client, "password@example.com", sessions=2)
        change = {"password": NEW_PASSWORD, "current_password": PASSWORD}
        request = client.build_request("PATCH", "/users/me", json=change, headers=bearer(second))
        await _revoke_while_hammered(client, first, request, 200)
        assert await _me(client, second) == 200
        # The cached user of the session that goes on has the new password hash: the old
        # password no longer passes as `current_password`.
        stale = {"password": PASSWORD, "current_password": PASSWORD}
        again = await client.patch("/users/me", json=stale, headers=bearer(second))
        assert again.status_code == 400, again.text

        # Deactivation by a superuser.
        token = (await _account(client, "inactive@example.com"))[0]
        user_id = await _user_id(client, token)
        request = client.build_request(
            "PATCH", f"/users/{user_id}", json={"is_active": False}, headers=bearer(root)
        )
        await _revoke_while_hammered(client, token, request, 200)

        # Deletion by a superuser.
        token = (await _account(client, "deleted@example.com"))[0]
        user_id = await _user_id(client, token)
        request = client.build_request("DELETE", f"/users/{user_id}", headers=bearer(root))
        await _revoke_while_hammered(client, token, request, 204)


async def test_a_change_to_the_account_is_seen_at_once(one_server: tuple[str, Path]) -> None:
    """Not a revocation, but the cached user must follow it: a new email, a new flag."""
    base, _ = one_server
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        root = await _login(client, ROOT_EMAIL)
        token = (await _account(client, "flags@example.com"))[0]
        me = await client.get("/users/me", headers=bearer(token))
        assert me.json()["is_superuser"] is False
        user_id = me.json()["id"]
        promoted = await client.patch(
            f"/users/{user_id}", json={"is_superuser": True}, headers=bearer(root)
        )
        assert promoted.status_code == 200
        assert (await client.get("/users/me", headers=bearer(token))).json()["is_superuser"]
        # And back: the superuser route refuses at once.
        demoted = await client.patch(
            f"/users/{user_id}", json={"is_superuser": False}, headers=bearer(root)
        )
        assert demoted.status_code == 200
        assert (await client.get(f"/users/{user_id}", headers=bearer(token))).status_code == 403


# --- Two processes sharing Redis ------------------------------------------------------------


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from throwaway_redis(tmp_path)


@pytest.fixture
def two_servers(tmp_path: Path, redis: RedisServer) -> Iterator[tuple[str, str, Path]]:
    env = _env(tmp_path, REDIS_URL=redis.url)
    _prepare(env)
    with ExitStack() as stack:
        a = stack.enter_context(_server(env, tmp_path / "a.log"))
        b = stack.enter_context(_server(env, tmp_path / "b.log"))
        yield a, b, tmp_path / "cache.db"


async def test_a_revocation_in_one_process_is_immediate_in_another(
    two_servers: tuple[str, str, Path],
) -> None:
    a_base, b_base, database = two_servers
    async with (
        httpx.AsyncClient(base_url=a_base, timeout=30) as a,
        httpx.AsyncClient(base_url=b_base, timeout=30) as b,
    ):
        await _shows_the_cache_serves(b, database, "behind@example.com")
        root = await _login(a, ROOT_EMAIL)

        # Logout through A; B (cache warm) refuses every call that starts after it returned.
        token = (await _account(a, "logout@example.com"))[0]
        assert await _me(b, token) == 200
        request = a.build_request("POST", "/auth/jwt/logout", headers=bearer(token))
        await _revoke_while_hammered(b, token, request, 204)

        # Password change through A ends the other session, cached in B.
        first, second = await _account(a, "password@example.com", sessions=2)
        change = {"password": NEW_PASSWORD, "current_password": PASSWORD}
        request = a.build_request("PATCH", "/users/me", json=change, headers=bearer(second))
        await _revoke_while_hammered(b, first, request, 200)

        # Deactivation through A.
        token = (await _account(a, "inactive@example.com"))[0]
        user_id = await _user_id(b, token)
        request = a.build_request(
            "PATCH", f"/users/{user_id}", json={"is_active": False}, headers=bearer(root)
        )
        await _revoke_while_hammered(b, token, request, 200)


async def test_without_redis_the_cache_is_not_trusted(
    two_servers: tuple[str, str, Path], redis: RedisServer
) -> None:
    """Redis stops answering: B reads the database (a session ended behind the app's back is
    refused, so no cached answer served), and a logout through A is refused (503, nothing
    changed) rather than made where other processes could not learn of it."""
    a_base, b_base, database = two_servers
    async with (
        httpx.AsyncClient(base_url=a_base, timeout=30) as a,
        httpx.AsyncClient(base_url=b_base, timeout=30) as b,
    ):
        token = (await _account(a, "outage@example.com"))[0]
        other = (await _account(a, "other@example.com"))[0]
        assert await _me(b, token) == 200
        assert await _me(b, other) == 200
        redis.stop()
        logout = await a.post("/auth/jwt/logout", headers=bearer(other))
        assert logout.status_code == 503, logout.text
        assert logout.headers["content-type"] == "application/problem+json"
        _end_sessions_behind_the_apps_back(database, "outage@example.com")
        assert await _me(b, token) == 401
        assert await _me(b, other) == 200  # the refused logout changed nothing


# --- In process: what the cache and the token memo must still refuse ------------------------


async def test_a_token_accepted_before_is_refused_once_expired(settings: CoreSettings) -> None:
    """A token's checked claims are remembered (modules/users/auth.py); its expiry is still
    checked on every request."""
    # `exp` is whole seconds, cut down (modules/users/tokens.py): a token lives between ttl - 1
    # and ttl seconds. With ttl=3 the first request lands well inside that; ttl + 0.2 s later the
    # token has expired whatever fraction of a second it was issued at.
    users = UsersSettings(access_token_ttl=3, auth_cache="local")
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, "expiring@example.com")
        token = (await login(client, "expiring@example.com"))["access_token"]
        assert await _me(client, token) == 200
        await asyncio.sleep(3.2)
        assert await _me(client, token) == 401
