"""Roles over real sockets: a grant made through one server process holds on the very next
request to another process sharing the database, and so does its removal; two superusers
ending each other at the same moment leave one standing. SQLite and (make test-postgres)
PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.database import Database
from tests.conftest import TEST_MODULES, TEST_SECRET
from tests.helpers import PASSWORD, assert_problem, bearer, free_port, wait_until_live
from tests.live_server import serve
from tests.modules.users.roles_helpers import make_superuser

ROOT = Path(__file__).resolve().parents[3]


def _start(database_url: str, data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(data_dir),
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data_dir),
        "MODULES": ",".join(TEST_MODULES),
        "LOG_FORMAT": "json",
    }
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--no-migrate", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture
def two_servers(database_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two `python -m app serve` processes on one database (each with its own memory)."""
    started = []
    try:
        for name in ("a", "b"):
            (tmp_path / name).mkdir()
            log = tmp_path / f"{name}.log"
            process, base = _start(database_url, tmp_path / name, log)
            started.append((process, base, log))
        for process, base, log in started:
            wait_until_live(base, process, log)
        yield started[0][1], started[1][1]
    finally:
        for process, _, _ in started:
            process.terminate()
            process.wait(timeout=30)


async def _login(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    response = await client.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def test_a_grant_through_one_process_holds_at_once_in_another(
    two_servers: tuple[str, str], database_url: str
) -> None:
    base_a, base_b = two_servers
    async with (
        httpx.AsyncClient(base_url=base_a, timeout=30) as a,
        httpx.AsyncClient(base_url=base_b, timeout=30) as b,
    ):
        for email in ("root@example.com", "ada@example.com"):
            registered = await a.post("/auth/register", json={"email": email, "password": PASSWORD})
            assert registered.status_code == 201, registered.text
        database = Database(database_url)
        try:
            await make_superuser(database, "root@example.com")
        finally:
            await database.dispose()
        root = await _login(a, "root@example.com")
        # Ada logs in through B: B has authenticated her before any grant.
        ada = await _login(b, "ada@example.com")
        ada_id = (await b.get("/users/me", headers=ada)).json()["id"]
        target = f"/users/{ada_id}"

        assert_problem(await b.get("/users", headers=ada), 403, "FORBIDDEN")
        assert_problem(await b.get(target, headers=ada), 403, "FORBIDDEN")

        created = await a.post(
            "/roles", json={"name": "auditor", "permissions": ["users:read"]}, headers=root
        )
        assert created.status_code == 201, created.text
        granted = await a.put(f"{target}/roles", json={"roles": ["auditor"]}, headers=root)
        assert granted.status_code == 200, granted.text
        listed = await b.get("/users", headers=ada)
        assert listed.status_code == 200, listed.text
        assert len(listed.json()) == 2
        allowed = await b.get(target, headers=ada)
        assert allowed.status_code == 200, allowed.text
        assert (await b.get("/users/me/permissions", headers=ada)).json() == {
            "roles": ["auditor"],
            "permissions": ["users:read"],
        }

        removed = await a.put(f"{target}/roles", json={"roles": []}, headers=root)
        assert removed.status_code == 200, removed.text
        assert_problem(await b.get("/users", headers=ada), 403, "FORBIDDEN")
        assert_problem(await b.get(target, headers=ada), 403, "FORBIDDEN")


async def _active_superusers(database: Database) -> int:
    from modules.users.models import User

    table = User.metadata.tables["user"]
    async with database.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(table)
            .where(table.c.is_superuser.is_(True), table.c.is_active.is_(True))
        )
    return int(count or 0)


@pytest.mark.parametrize(
    "race",
    [
        # Each demotes the other; each deletes itself; one deactivates, the other deletes.
        (("patch", "b", {"is_superuser": False}), ("patch", "a", {"is_superuser": False})),
        (("delete", "a", None), ("delete", "b", None)),
        (("patch", "b", {"is_active": False}), ("delete", "a", None)),
    ],
    ids=["demote-each-other", "delete-themselves", "deactivate-and-delete"],
)
async def test_two_superusers_ending_each_other_leave_one(
    app: FastAPI, database_url: str, race: tuple[tuple[str, str, dict[str, bool] | None], ...]
) -> None:
    # The test's own engine: the app's belongs to the server's thread and event loop.
    database = Database(database_url)
    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            ids: dict[str, str] = {}
            tokens: dict[str, dict[str, str]] = {}
            for name in ("a", "b"):
                email = f"{name}@example.com"
                registered = await client.post(
                    "/auth/register", json={"email": email, "password": PASSWORD}
                )
                ids[name] = registered.json()["id"]
                await make_superuser(database, email)
                tokens[name] = await _login(client, email)

            def call(caller: str, step: tuple[str, str, dict[str, bool] | None]):  # type: ignore[no-untyped-def]
                method, whom, body = step
                url = f"/users/{ids[whom]}"
                if method == "patch":
                    return client.patch(url, json=body, headers=tokens[caller])
                return client.delete(url, headers=tokens[caller])

            first, second = await asyncio.gather(call("a", race[0]), call("b", race[1]))

        statuses = sorted([first.status_code, second.status_code])
        assert statuses[0] in (200, 204), (first.text, second.text)
        # The other is refused: 409 when both were superusers as their checks ran (the lock
        # then orders them), or 403 when one's change had committed before the other's
        # permission check (its caller was no longer a superuser): both leave one standing.
        assert statuses[1] in (403, 409), (first.text, second.text)
        refused = first if first.status_code in (403, 409) else second
        code = "LAST_SUPERUSER" if refused.status_code == 409 else "FORBIDDEN"
        assert_problem(refused, refused.status_code, code)
        assert await _active_superusers(database) == 1
    await database.dispose()


async def test_changing_an_account_deleted_meanwhile_is_404(
    app: FastAPI, database_url: str
) -> None:
    """A PATCH or DELETE racing a DELETE of the same account: 404, never a 500."""
    database = Database(database_url)
    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            for email in ("root@example.com", "second@example.com", "ada@example.com"):
                await client.post("/auth/register", json={"email": email, "password": PASSWORD})
            for email in ("root@example.com", "second@example.com"):
                await make_superuser(database, email)
            await database.dispose()
            root = await _login(client, "root@example.com")
            second = await _login(client, "second@example.com")
            ada = await client.get("/users/me", headers=await _login(client, "ada@example.com"))
            url = f"/users/{ada.json()['id']}"
            results = await asyncio.gather(
                client.delete(url, headers=root),
                client.patch(url, json={"is_verified": True}, headers=second),
                client.delete(url, headers=second),
            )
    statuses = [r.status_code for r in results]
    assert 500 not in statuses, [r.text for r in results]
    assert statuses.count(204) == 1, statuses
    assert set(statuses) <= {200, 204, 404}, statuses
