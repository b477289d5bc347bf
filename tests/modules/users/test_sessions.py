"""Logout, logout-all, the session list, and the events that end every session of a user."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from app.factory import create_app
from app.settings import CoreSettings
from modules.users.models import LoginSession, User
from modules.users.settings import UsersSettings
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, assert_problem, bearer, login, register
from tests.mail import token_in, wait_for_mail

EMAIL = "ada@example.com"
NEW_PASSWORD = "another long passphrase for ada"


async def assert_session_over(client: httpx.AsyncClient, pair: dict[str, str]) -> None:
    """Both tokens of the session stop working."""
    me = await client.get("/users/me", headers=bearer(pair["access_token"]))
    assert_problem(me, 401, "UNAUTHORIZED")
    assert me.headers["www-authenticate"] == "Bearer"
    again = await client.post("/auth/jwt/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_problem(again, 401, "REFRESH_TOKEN_INVALID")


async def assert_session_alive(client: httpx.AsyncClient, pair: dict[str, str]) -> None:
    assert (await client.get("/users/me", headers=bearer(pair["access_token"]))).status_code == 200


def session_id(pair: dict[str, str]) -> str:
    return str(jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"])


async def make_superuser(app: FastAPI, email: str) -> None:
    # There is no API to become superuser (on purpose); the CLI does this in real life.
    async with app.state.database.sessionmaker() as db:
        await db.execute(
            update(User).where(User.__table__.c["email"] == email).values(is_superuser=True)
        )
        await db.commit()


async def test_logout_ends_this_session_at_once(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    user = await register(client, EMAIL)
    pair, other = await login(client, EMAIL), await login(client, EMAIL)
    await assert_session_alive(client, pair)

    response = await client.post("/auth/jwt/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204

    await assert_session_over(client, pair)
    await assert_session_alive(client, other)  # other logins are not touched
    again = await client.post("/auth/jwt/logout", headers=bearer(pair["access_token"]))
    assert_problem(again, 401, "UNAUTHORIZED")
    revoked = logs.find(lambda r: r["message"] == "login session revoked")
    assert revoked and revoked[0]["user_id"] == user["id"]
    assert revoked[0]["session_id"] == session_id(pair)
    assert pair["access_token"] not in logs.text


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    for path in ("/auth/jwt/logout", "/auth/jwt/logout-all"):
        response = await client.post(path)
        assert_problem(response, 401, "UNAUTHORIZED")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_logout_all_ends_every_session(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    await register(client, "eve@example.com")
    pairs = [await login(client, EMAIL) for _ in range(3)]
    eve = await login(client, "eve@example.com")

    response = await client.post("/auth/jwt/logout-all", headers=bearer(pairs[0]["access_token"]))
    assert response.status_code == 204

    for pair in pairs:
        await assert_session_over(client, pair)
    await assert_session_alive(client, eve)


async def test_password_reset_ends_every_session(
    app: FastAPI, client: httpx.AsyncClient, logs: LogCapture
) -> None:
    await register(client, EMAIL)
    pairs = [await login(client, EMAIL) for _ in range(2)]
    assert (await client.post("/auth/forgot-password", json={"email": EMAIL})).status_code == 202
    token = token_in(await wait_for_mail(app, EMAIL, "Reset"))

    reset = await client.post(
        "/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 204, reset.text

    for pair in pairs:
        await assert_session_over(client, pair)
    await login(client, EMAIL, NEW_PASSWORD)
    assert logs.find(lambda r: r.get("reason") == "password reset" and r.get("sessions") == 2)


async def test_password_change_ends_the_other_sessions(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    pair, other = await login(client, EMAIL), await login(client, EMAIL)

    changed = await client.patch(
        "/users/me",
        headers=bearer(pair["access_token"]),
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
    )
    assert changed.status_code == 200, changed.text

    await assert_session_over(client, other)
    await assert_session_alive(client, pair)  # the session the change was made from
    await login(client, EMAIL, NEW_PASSWORD)


async def test_other_updates_keep_sessions(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    pair = await login(client, EMAIL)
    changed = await client.patch(
        "/users/me",
        headers=bearer(pair["access_token"]),
        json={"email": "ada@example.org", "current_password": PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    await assert_session_alive(client, pair)


async def test_superuser_password_change_and_deactivation_end_sessions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await register(client, "root@example.com")
    await make_superuser(app, "root@example.com")
    admin = await login(client, "root@example.com")
    user = await register(client, EMAIL)

    before = await login(client, EMAIL)
    changed = await client.patch(
        f"/users/{user['id']}",
        headers=bearer(admin["access_token"]),
        json={"password": NEW_PASSWORD},
    )
    assert changed.status_code == 200, changed.text
    await assert_session_over(client, before)

    pair = await login(client, EMAIL, NEW_PASSWORD)
    await assert_session_alive(client, pair)
    deactivated = await client.patch(
        f"/users/{user['id']}", headers=bearer(admin["access_token"]), json={"is_active": False}
    )
    assert deactivated.status_code == 200, deactivated.text
    await assert_session_over(client, pair)
    await assert_session_alive(client, admin)


async def test_a_deactivated_users_token_is_refused_even_if_its_session_lives(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """Deactivated behind the API's back (no hook ran): the user check still refuses."""
    await register(client, EMAIL)
    pair = await login(client, EMAIL)
    async with app.state.database.sessionmaker() as db:
        await db.execute(
            update(User).where(User.__table__.c["email"] == EMAIL).values(is_active=False)
        )
        await db.commit()
    assert_problem(
        await client.get("/users/me", headers=bearer(pair["access_token"])), 401, "UNAUTHORIZED"
    )
    refreshed = await client.post(
        "/auth/jwt/refresh", json={"refresh_token": pair["refresh_token"]}
    )
    assert_problem(refreshed, 401, "REFRESH_TOKEN_INVALID")


async def test_a_deleted_users_token_is_refused(app: FastAPI, client: httpx.AsyncClient) -> None:
    await register(client, "root@example.com")
    await make_superuser(app, "root@example.com")
    admin = await login(client, "root@example.com")
    user = await register(client, EMAIL)
    pair = await login(client, EMAIL)

    deleted = await client.delete(f"/users/{user['id']}", headers=bearer(admin["access_token"]))
    assert deleted.status_code == 204
    await assert_session_over(client, pair)


async def test_sessions_list_flags_the_current_one(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    first = await login(client, EMAIL)
    second = await client.post(
        "/auth/jwt/login",
        data={"username": EMAIL, "password": PASSWORD},
        headers={"User-Agent": "gatehouse-test/2"},
    )
    assert second.status_code == 200
    current = second.json()
    ended = await login(client, EMAIL)
    await client.post("/auth/jwt/logout", headers=bearer(ended["access_token"]))

    response = await client.get("/users/me/sessions", headers=bearer(current["access_token"]))
    assert response.status_code == 200
    sessions = {s["id"]: s for s in response.json()}
    assert set(sessions) == {session_id(first), session_id(current)}  # not the ended one
    mine = sessions[session_id(current)]
    assert mine["current"] is True
    assert sessions[session_id(first)]["current"] is False
    assert mine["user_agent"] == "gatehouse-test/2"
    assert mine["client_address"] == "127.0.0.1"
    assert set(mine) == {
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "user_agent",
        "client_address",
        "current",
    }


async def test_ending_one_session_from_the_list(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    pair, lost_device = await login(client, EMAIL), await login(client, EMAIL)

    response = await client.delete(
        f"/users/me/sessions/{session_id(lost_device)}", headers=bearer(pair["access_token"])
    )
    assert response.status_code == 204
    await assert_session_over(client, lost_device)
    await assert_session_alive(client, pair)
    again = await client.delete(
        f"/users/me/sessions/{session_id(lost_device)}", headers=bearer(pair["access_token"])
    )
    assert_problem(again, 404, "NOT_FOUND")


async def test_another_users_session_cannot_be_ended(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    await register(client, "eve@example.com")
    ada = await login(client, EMAIL)
    eve = await login(client, "eve@example.com")

    response = await client.delete(
        f"/users/me/sessions/{session_id(ada)}", headers=bearer(eve["access_token"])
    )
    body = assert_problem(response, 404, "NOT_FOUND")
    unknown = await client.delete(
        "/users/me/sessions/00000000-0000-4000-8000-000000000000",
        headers=bearer(eve["access_token"]),
    )
    unknown_body = assert_problem(unknown, 404, "NOT_FOUND")
    # Someone else's session and no session at all look the same.
    assert body["detail"] == unknown_body["detail"]
    await assert_session_alive(client, ada)


@pytest.fixture
def capped_app(settings: CoreSettings) -> FastAPI:
    return create_app(
        settings,
        module_settings={
            # Six logins at once count as six attempts in flight: allow them. Ended sessions
            # are not retained: the next login of the user deletes them.
            "users": UsersSettings(
                max_sessions_per_user=CAP, login_max_failures=20, session_retention=0
            )
        },
    )


@pytest.fixture
async def capped_client(capped_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with capped_app.router.lifespan_context(capped_app):
        transport = httpx.ASGITransport(app=capped_app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


CAP = 3


def test_the_default_cap_is_a_hundred_sessions() -> None:
    assert UsersSettings().max_sessions_per_user == 100


async def list_ids(client: httpx.AsyncClient, access_token: str, query: str = "") -> list[str]:
    response = await client.get(f"/users/me/sessions{query}", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()]


async def test_a_login_past_the_cap_ends_the_oldest_session(
    capped_client: httpx.AsyncClient, logs: LogCapture
) -> None:
    client = capped_client
    user = await register(client, EMAIL)
    pairs = [await login(client, EMAIL) for _ in range(CAP + 2)]

    oldest, kept = pairs[:2], pairs[2:]
    for pair in oldest:
        await assert_session_over(client, pair)
    for pair in kept:
        await assert_session_alive(client, pair)
    newest_first = [session_id(p) for p in reversed(kept)]
    assert await list_ids(client, kept[-1]["access_token"]) == newest_first
    ended = logs.find(
        lambda r: r["message"] == "login session revoked" and r.get("reason") == "session cap"
    )
    assert [r["session_id"] for r in ended] == [session_id(p) for p in oldest]
    assert {r["user_id"] for r in ended} == {user["id"]}


async def test_parallel_logins_never_exceed_the_cap(
    capped_app: FastAPI, capped_client: httpx.AsyncClient
) -> None:
    """Logins racing each other (one account, six at once) still leave CAP live sessions."""
    client = capped_client
    await register(client, EMAIL)
    pairs = await asyncio.gather(*(login(client, EMAIL) for _ in range(6)))

    alive = [p for p in pairs if (await me_status(client, p)) == 200]
    assert len(alive) == CAP
    async with capped_app.state.database.sessionmaker() as db:
        live = await db.scalar(
            select(func.count()).select_from(LoginSession).where(LoginSession.revoked_at.is_(None))
        )
    assert live == CAP
    # Ended sessions are deleted at the next login, so the table stays near the cap too.
    await login(client, EMAIL)
    async with capped_app.state.database.sessionmaker() as db:
        rows = await db.scalar(select(func.count()).select_from(LoginSession))
    assert rows == CAP + 1  # the CAP live ones and the one this login just ended


async def me_status(client: httpx.AsyncClient, pair: dict[str, str]) -> int:
    return (await client.get("/users/me", headers=bearer(pair["access_token"]))).status_code


NEXT_LINK = re.compile(r'^<(/users/me/sessions\?[^>]+)>; rel="next"$')


async def test_the_session_list_pages_with_a_link_header(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    pairs = [await login(client, EMAIL) for _ in range(5)]
    token = pairs[0]["access_token"]
    newest_first = [session_id(p) for p in reversed(pairs)]

    # Without parameters: the whole (short) list as before, a bare array, no Link.
    whole = await client.get("/users/me/sessions", headers=bearer(token))
    assert [s["id"] for s in whole.json()] == newest_first
    assert "link" not in whole.headers

    seen: list[str] = []
    url = "/users/me/sessions?limit=2"
    pages = 0
    while url:
        page = await client.get(url, headers=bearer(token))
        assert page.status_code == 200, page.text
        body = page.json()
        assert isinstance(body, list) and 1 <= len(body) <= 2
        seen += [s["id"] for s in body]
        pages += 1
        link = page.headers.get("link")
        if link is None:
            break
        match = NEXT_LINK.match(link)
        assert match, link
        url = match.group(1)
        assert "limit=2" in url
    assert pages == 3
    assert seen == newest_first  # every session once, in order, across the pages


async def test_pages_do_not_shift_when_sessions_refresh(client: httpx.AsyncClient) -> None:
    """The order is by login time, which no refresh moves (last_used_at would)."""
    await register(client, EMAIL)
    pairs = [await login(client, EMAIL) for _ in range(4)]
    token = pairs[-1]["access_token"]
    first = await client.get("/users/me/sessions?limit=2", headers=bearer(token))
    match = NEXT_LINK.match(first.headers["link"])
    assert match
    # The oldest session refreshes between the two page requests.
    refreshed = await client.post(
        "/auth/jwt/refresh", json={"refresh_token": pairs[0]["refresh_token"]}
    )
    assert refreshed.status_code == 200
    second = await client.get(match.group(1), headers=bearer(token))
    ids = [s["id"] for s in first.json()] + [s["id"] for s in second.json()]
    assert ids == [session_id(p) for p in reversed(pairs)]


async def test_a_bad_cursor_or_limit_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    token = (await login(client, EMAIL))["access_token"]
    for query in (
        "?cursor=not-a-cursor",
        "?cursor=" + "A" * 31,
        "?cursor=" + "%C3%A9" * 32,
        "?cursor=" + "A" * 65,
        "?cursor=",
        "?limit=0",
        "?limit=101",
        "?limit=ten",
    ):
        response = await client.get(f"/users/me/sessions{query}", headers=bearer(token))
        body = assert_problem(response, 422, "VALIDATION_ERROR")
        assert body["errors"][0]["loc"][:1] == ["query"], (query, body)


async def test_another_users_cursor_shows_only_my_sessions(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    await register(client, "eve@example.com")
    ada = [await login(client, EMAIL) for _ in range(3)]
    eve = await login(client, "eve@example.com")
    page = await client.get("/users/me/sessions?limit=1", headers=bearer(ada[0]["access_token"]))
    match = NEXT_LINK.match(page.headers["link"])
    assert match
    query = match.group(1).removeprefix("/users/me/sessions")
    assert await list_ids(client, eve["access_token"], query) == []
