"""Login and refresh over HTTP: rotation, reuse detection, races, the absolute lifetime."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.database import create_engine
from app.factory import create_app
from app.settings import CoreSettings
from modules.users.models import LoginSession, RotatedRefreshToken
from modules.users.settings import UsersSettings
from modules.users.tokens import issue_refresh_token
from tests.conftest import LogCapture
from tests.helpers import assert_problem, bearer, login, register
from tests.live_server import serve

EMAIL = "ada@example.com"


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/jwt/refresh", json={"refresh_token": token})


async def me_status(client: httpx.AsyncClient, access_token: str) -> int:
    return (await client.get("/users/me", headers=bearer(access_token))).status_code


async def test_login_answers_a_token_pair_that_is_never_cached(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    response = await client.post(
        "/auth/jwt/login", data={"username": EMAIL, "password": ("correct horse battery staple")}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    pair = response.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 900
    # 256 random bits, URL-safe base64 without padding.
    assert len(pair["refresh_token"]) >= 43
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert set(claims) >= {"sub", "aud", "iss", "iat", "exp", "jti", "sid", "typ"}
    assert claims["exp"] - claims["iat"] == 900


async def test_every_login_gets_new_tokens_and_a_new_session(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    first, second = await login(client, EMAIL), await login(client, EMAIL)
    assert first["access_token"] != second["access_token"]
    assert first["refresh_token"] != second["refresh_token"]
    sid = [
        jwt.decode(p["access_token"], options={"verify_signature": False})["sid"]
        for p in (first, second)
    ]
    assert sid[0] != sid[1]
    for pair in (first, second):
        assert await me_status(client, pair["access_token"]) == 200


async def test_refresh_rotates_and_reuse_ends_the_whole_session(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    user = await register(client, EMAIL)
    first = await login(client, EMAIL)

    rotated = await refresh(client, first["refresh_token"])
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    # The refreshed access token belongs to the same session.
    sid = jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    assert jwt.decode(second["access_token"], options={"verify_signature": False})["sid"] == sid
    assert await me_status(client, second["access_token"]) == 200

    # The rotated token again: theft assumed, the session ends.
    assert_problem(await refresh(client, first["refresh_token"]), 401, "REFRESH_TOKEN_REUSED")
    assert_problem(await refresh(client, second["refresh_token"]), 401, "REFRESH_TOKEN_INVALID")
    for access in (first["access_token"], second["access_token"]):
        me = await client.get("/users/me", headers=bearer(access))
        assert_problem(me, 401, "UNAUTHORIZED")
        assert me.headers["www-authenticate"] == "Bearer"

    warnings = logs.find(lambda r: r["level"] == "WARNING" and "reuse" in r["message"])
    assert warnings, logs.text
    assert warnings[0]["user_id"] == user["id"]
    assert warnings[0]["session_id"] == sid
    for token in (first["refresh_token"], second["refresh_token"], first["access_token"]):
        assert token not in logs.text


async def test_unknown_refresh_token_is_invalid(client: httpx.AsyncClient) -> None:
    assert_problem(await refresh(client, "not-a-token-we-issued"), 401, "REFRESH_TOKEN_INVALID")


async def test_an_access_token_is_not_a_refresh_token(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    pair = await login(client, EMAIL)
    assert_problem(await refresh(client, pair["access_token"]), 401, "REFRESH_TOKEN_INVALID")


async def test_concurrent_refreshes_with_one_token_have_one_winner(
    client: httpx.AsyncClient,
) -> None:
    await register(client, EMAIL)
    pair = await login(client, EMAIL)

    answers = await asyncio.gather(*(refresh(client, pair["refresh_token"]) for _ in range(20)))

    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] + [401] * 19, [a.text for a in answers if a.status_code != 401]
    for answer in answers:
        if answer.status_code == 401:
            # The losers presented a token that had just been rotated: that is reuse.
            assert_problem(answer, 401, "REFRESH_TOKEN_REUSED")
    # So the session is over, and no refresh token of it is left alive.
    (winner,) = [a.json() for a in answers if a.status_code == 200]
    assert_problem(await refresh(client, winner["refresh_token"]), 401, "REFRESH_TOKEN_INVALID")
    assert await me_status(client, winner["access_token"]) == 401


@pytest.fixture
def short_app(settings: CoreSettings) -> FastAPI:
    """Sessions that last two seconds, for the absolute-lifetime test below; ended sessions
    are not retained (the next login of their user deletes them)."""
    users = UsersSettings(refresh_token_ttl=2, session_retention=0)
    return create_app(settings, module_settings={"users": users})


@pytest.fixture
async def short_client(short_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    app = short_app
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


async def session_expiry(client: httpx.AsyncClient, access_token: str) -> datetime:
    response = await client.get("/users/me/sessions", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    (current,) = [s for s in response.json() if s["current"]]
    return datetime.fromisoformat(current["expires_at"])


async def test_rotation_never_extends_the_absolute_session_lifetime(
    short_client: httpx.AsyncClient,
) -> None:
    client = short_client
    await register(client, EMAIL)
    first = await login(client, EMAIL)
    assert first["expires_in"] <= 2  # the access token does not outlive its session
    expires_at = await session_expiry(client, first["access_token"])

    await asyncio.sleep(0.2)  # a refresh later than the login, by a margin timestamps show
    second = (await refresh(client, first["refresh_token"])).json()
    assert second["expires_in"] <= 2
    claims = jwt.decode(second["access_token"], options={"verify_signature": False})
    assert claims["exp"] <= expires_at.timestamp()
    assert await session_expiry(client, second["access_token"]) == expires_at

    await asyncio.sleep(max(0.0, expires_at.timestamp() + 0.1 - time.time()))
    assert_problem(await refresh(client, second["refresh_token"]), 401, "REFRESH_TOKEN_INVALID")
    assert await me_status(client, second["access_token"]) == 401


async def test_expired_sessions_are_purged_at_the_next_login(
    short_app: FastAPI, short_client: httpx.AsyncClient
) -> None:
    client = short_client
    await register(client, EMAIL)
    first = await login(client, EMAIL)
    assert (await refresh(client, first["refresh_token"])).status_code == 200
    expires_at = await session_expiry(client, first["access_token"])
    await asyncio.sleep(max(0.0, expires_at.timestamp() + 0.1 - time.time()))

    await login(client, EMAIL)

    async with short_app.state.database.sessionmaker() as db:
        sessions = await db.scalar(select(func.count()).select_from(LoginSession))
        rotated = await db.scalar(select(func.count()).select_from(RotatedRefreshToken))
    assert (sessions, rotated) == (1, 0)


FLOOD_LOOPS = 6
FLOOD_REFRESHES = 200  # per loop
FLOOD_SECONDS = 20.0  # and never longer than this


async def test_parallel_refresh_loops_never_fail_and_write_a_bounded_number_of_rows(
    app: FastAPI, settings: CoreSettings
) -> None:
    """Six clients each refresh their own session as fast as they can, all at once, against a
    real server (the audit's flood): no refresh fails with a 5xx, and the tables do not grow
    with the number of refreshes."""
    with serve(app) as base_url:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            await register(client, EMAIL)
            tokens = [(await login(client, EMAIL))["refresh_token"] for _ in range(FLOOD_LOOPS)]
            deadline = time.monotonic() + FLOOD_SECONDS

            async def loop(token: str) -> int:
                done = 0
                while done < FLOOD_REFRESHES and time.monotonic() < deadline:
                    answer = await refresh(client, token)
                    assert answer.status_code == 200, answer.text
                    token = answer.json()["refresh_token"]
                    done += 1
                return done

            started = time.monotonic()
            done = sum(await asyncio.gather(*(loop(t) for t in tokens)))
            print(f"{done} refreshes in {time.monotonic() - started:.1f}s")
            assert done >= FLOOD_LOOPS * 10  # the loops really ran in parallel for a while

    # An engine of this event loop's own: the app's pool belongs to the server's thread.
    engine = create_engine(settings.database_url)
    async with engine.connect() as db:
        sessions = await db.scalar(select(func.count()).select_from(LoginSession))
        rotated = await db.scalar(select(func.count()).select_from(RotatedRefreshToken))
    await engine.dispose()
    assert (sessions, rotated) == (FLOOD_LOOPS, 0)


def session_of(pair: dict[str, str]) -> uuid.UUID:
    return uuid.UUID(jwt.decode(pair["access_token"], options={"verify_signature": False})["sid"])


async def test_a_session_stays_one_row_and_keeps_only_a_hash(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await register(client, EMAIL)
    pair = await login(client, EMAIL)
    tokens = [pair["refresh_token"]]
    for _ in range(3):
        tokens.append((await refresh(client, tokens[-1])).json()["refresh_token"])

    async with app.state.database.sessionmaker() as db:
        (row,) = (await db.scalars(select(LoginSession))).all()
        rotated = await db.scalar(select(func.count()).select_from(RotatedRefreshToken))
    assert rotated == 0
    assert row.id == session_of(pair)
    assert row.refresh_generation == 3
    assert row.refresh_token_hash == hashlib.sha256(tokens[-1].encode()).hexdigest()
    stored = " ".join(str(v) for v in vars(row).values())
    assert not any(token in stored for token in tokens)
    # Every older generation is still recognised as one we issued: reuse ends the session.
    assert_problem(await refresh(client, tokens[1]), 401, "REFRESH_TOKEN_REUSED")
    assert_problem(await refresh(client, tokens[-1]), 401, "REFRESH_TOKEN_INVALID")


async def test_a_forged_old_generation_cannot_end_a_session(client: httpx.AsyncClient) -> None:
    """Knowing a session id (it is in every access token) is not enough to pass a token off
    as an older generation of it: the tag is checked first."""
    await register(client, EMAIL)
    pair = await login(client, EMAIL)
    current = (await refresh(client, pair["refresh_token"])).json()
    forged = issue_refresh_token("not-the-servers-secret-" * 2, session_of(pair), 0)

    assert_problem(await refresh(client, forged), 401, "REFRESH_TOKEN_INVALID")
    assert await me_status(client, current["access_token"]) == 200
    assert (await refresh(client, current["refresh_token"])).status_code == 200


async def session_from_before(app: FastAPI, user_id: uuid.UUID) -> tuple[str, str, uuid.UUID]:
    """A session as the code before generation tokens left it: its current token a bare
    random string known by its hash, its previous one in a rotated_refresh_token row.
    Returns (previous token, current token, session id)."""
    older, current = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with app.state.database.sessionmaker() as db:
        db.add(
            LoginSession(
                id=session_id,
                user_id=user_id,
                created_at=now,
                last_used_at=now,
                expires_at=now + timedelta(days=30),
                refresh_token_hash=hashlib.sha256(current.encode()).hexdigest(),
            )
        )
        await db.flush()
        db.add(
            RotatedRefreshToken(
                token_hash=hashlib.sha256(older.encode()).hexdigest(),
                session_id=session_id,
                rotated_at=now,
            )
        )
        await db.commit()
    return older, current, session_id


async def test_refresh_tokens_issued_before_generations_keep_working(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await register(client, EMAIL)
    _, current, session_id = await session_from_before(app, uuid.UUID(user["id"]))

    rotated = await refresh(client, current)
    assert rotated.status_code == 200, rotated.text
    pair = rotated.json()
    assert session_of(pair) == session_id
    again = await refresh(client, pair["refresh_token"])  # the new format takes over
    assert again.status_code == 200, again.text
    newest = again.json()

    # The old-format token just rotated away is reuse, like any other.
    assert_problem(await refresh(client, current), 401, "REFRESH_TOKEN_REUSED")
    assert await me_status(client, newest["access_token"]) == 401
    assert_problem(await refresh(client, newest["refresh_token"]), 401, "REFRESH_TOKEN_INVALID")


async def test_a_rotated_token_from_before_the_change_still_ends_its_session(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await register(client, EMAIL)
    older, current, _ = await session_from_before(app, uuid.UUID(user["id"]))

    assert_problem(await refresh(client, older), 401, "REFRESH_TOKEN_REUSED")
    assert_problem(await refresh(client, current), 401, "REFRESH_TOKEN_INVALID")
