"""GET /users: superusers list accounts a page at a time (newest first), filtered; users
get 403. Over HTTP; the crowd of accounts is written straight into the table (registering
dozens over HTTP would hash dozens of passwords and hit the registration limit)."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import insert, update

from app import migrations
from app.factory import create_app
from app.settings import CoreSettings
from modules.users.models import User
from tests.conftest import TEST_MODULES, TEST_SECRET
from tests.helpers import assert_problem, bearer, login, register
from tests.modules.users.test_email_migration import _database_before_0003
from tests.upstreams import app_client

USER_TABLE = User.metadata.tables["user"]
NEXT = re.compile(r'^<(/users\?[^>]+)>; rel="next"$')
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _seed(app: FastAPI, rows: list[dict[str, Any]]) -> None:
    async with app.state.database.sessionmaker() as session:
        await session.execute(
            insert(USER_TABLE),
            [
                {
                    "hashed_password": "not-a-hash",
                    "is_active": True,
                    "is_superuser": False,
                    "is_verified": False,
                    **row,
                }
                for row in rows
            ],
        )
        await session.commit()


async def _superuser_token(app: FastAPI, client: httpx.AsyncClient) -> str:
    await register(client, "root@example.com")
    async with app.state.database.sessionmaker() as session:
        await session.execute(
            update(USER_TABLE)
            .where(USER_TABLE.c.email == "root@example.com")
            .values(is_superuser=True, created_at=T0 - timedelta(days=1))
        )
        await session.commit()
    return str((await login(client, "root@example.com"))["access_token"])


async def _walk(client: httpx.AsyncClient, first: str, token: str) -> list[list[dict[str, Any]]]:
    """Every page, following `Link: rel="next"` as given."""
    pages, url = [], first
    while True:
        response = await client.get(url, headers=bearer(token))
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = response.headers.get("link")
        if link is None:
            return pages
        match = NEXT.match(link)
        assert match, link
        url = match.group(1)


async def test_a_superuser_walks_every_account_newest_first(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await _superuser_token(app, client)
    # 3 accounts share one creation time (as accounts dated by the migration do): the id
    # orders them, and no page boundary loses or repeats one of them.
    rows: list[dict[str, Any]] = [
        {"id": uuid.uuid4(), "email": f"user{i}@example.com", "created_at": T0 + timedelta(i)}
        for i in range(7)
    ]
    rows += [
        {"id": uuid.uuid4(), "email": f"tie{i}@example.com", "created_at": T0 + timedelta(3)}
        for i in range(3)
    ]
    await _seed(app, rows)

    pages = await _walk(client, "/users?limit=3", token)
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    listed = [user["id"] for page in pages for user in page]
    # root was dated a day before every other account: it is last.
    expected = sorted(rows, key=lambda r: (r["created_at"], str(r["id"])), reverse=True)
    assert listed == [*(str(r["id"]) for r in expected), pages[-1][-1]["id"]]
    assert pages[-1][-1]["email"] == "root@example.com" and pages[-1][-1]["is_superuser"]
    assert pages[0][0]["created_at"] == "2026-01-07T00:00:00Z"
    assert set(pages[0][0]) == {
        "id",
        "email",
        "is_active",
        "is_superuser",
        "is_verified",
        "created_at",
    }

    whole = await client.get("/users", headers=bearer(token))
    assert [u["id"] for u in whole.json()] == listed and "link" not in whole.headers


async def test_filters_narrow_the_list_and_the_next_link_keeps_them(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await _superuser_token(app, client)
    await _seed(
        app,
        [
            {
                "id": uuid.uuid4(),
                "email": "ada@corp.example",
                "created_at": T0,
                "is_verified": True,
            },
            {"id": uuid.uuid4(), "email": "bob@corp.example", "created_at": T0 + timedelta(1)},
            {
                "id": uuid.uuid4(),
                "email": "cy@corp.example",
                "created_at": T0 + timedelta(2),
                "is_active": False,
            },
            {"id": uuid.uuid4(), "email": "dee@home.example", "created_at": T0 + timedelta(3)},
            # `%` and `_` are literal in the filter, never wildcards.
            {"id": uuid.uuid4(), "email": "e_f@home.example", "created_at": T0 + timedelta(4)},
        ],
    )

    async def emails(query: str) -> list[str]:
        response = await client.get(f"/users?{query}", headers=bearer(token))
        assert response.status_code == 200, response.text
        return [u["email"] for u in response.json()]

    assert await emails("email=CORP.example") == [
        "cy@corp.example",
        "bob@corp.example",
        "ada@corp.example",
    ]
    assert await emails("email=corp&is_active=false") == ["cy@corp.example"]
    assert await emails("email=corp&is_verified=true") == ["ada@corp.example"]
    assert await emails("is_superuser=true") == ["root@example.com"]
    assert await emails("email=e_f") == ["e_f@home.example"]
    assert await emails("email=%25") == []

    pages = await _walk(client, "/users?limit=1&email=corp&is_active=true", token)
    assert [[u["email"] for u in page] for page in pages] == [
        ["bob@corp.example"],
        ["ada@corp.example"],
    ]


async def test_a_user_gets_403_and_a_stranger_401(app: FastAPI, client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    assert_problem(await client.get("/users", headers=bearer(tokens["access_token"])), 403)
    assert_problem(await client.get("/users"), 401, "UNAUTHORIZED")


async def test_bad_paging_parameters_are_422(app: FastAPI, client: httpx.AsyncClient) -> None:
    token = await _superuser_token(app, client)
    for query, where in (
        ("cursor=not-a-cursor", "cursor"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("is_active=maybe", "is_active"),
    ):
        response = await client.get(f"/users?{query}", headers=bearer(token))
        problem = assert_problem(response, 422, "VALIDATION_ERROR")
        assert [e["loc"] for e in problem["errors"]] == [["query", where]], problem


async def test_registration_records_the_creation_time(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    token = await _superuser_token(app, client)
    before = datetime.now(UTC)
    await register(client, "new@example.com")
    listed = (await client.get("/users?email=new@", headers=bearer(token))).json()
    created = datetime.fromisoformat(listed[0]["created_at"])
    assert before - timedelta(seconds=1) <= created <= datetime.now(UTC)


async def test_users_0005_dates_existing_accounts_and_lists_them(
    empty_database: str, tmp_path: Path
) -> None:
    """Accounts from before the column: dated by the migration, listed, tie broken by id."""
    url = empty_database
    await _database_before_0003(url, ["ada@example.com", "bob@example.com", "cy@example.com"])
    await asyncio.to_thread(migrations.upgrade, url, TEST_MODULES)
    settings = CoreSettings(
        environment="test", database_url=url, secret_key=TEST_SECRET, data_dir=tmp_path
    )
    app = create_app(settings)
    async with app_client(app) as client:
        token = await _superuser_token(app, client)
        listed = (await client.get("/users", headers=bearer(token))).json()
    old = [u for u in listed if u["email"] != "root@example.com"]
    assert len(old) == 3 and len({u["created_at"] for u in old}) == 1
    assert [u["id"] for u in old] == sorted((u["id"] for u in old), reverse=True)
    # root was registered after the migration, then dated a day before T0 by the test.
    assert listed[-1]["email"] == "root@example.com"
