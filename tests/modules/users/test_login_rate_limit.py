"""Brute-force protection on login (Keycloak BruteForceTest: testGrantInvalidPassword,
testNonExistingAccounts, testResetLoginFailureCount, testWait), per username and per address,
shared through Redis, counted in process memory when Redis is down."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from loguru import logger

from app.settings import CoreSettings
from modules.users.settings import UsersSettings
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, assert_problem, login, register
from tests.modules.users.apps import client_for, running_app
from tests.services import require_redis

WRONG = "not the password at all"


async def _attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/jwt/login", data={"username": email, "password": password})


async def _fail(client: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        assert_problem(await _attempt(client, email, WRONG), 400, "LOGIN_BAD_CREDENTIALS")


def _locked(response: httpx.Response, window: int = 900) -> dict[str, Any]:
    body = assert_problem(response, 429, "RATE_LIMITED")
    assert 1 <= int(response.headers["retry-after"]) <= window
    del body["request_id"]
    return body


async def test_after_5_failures_even_the_right_password_is_refused(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    user = await register(client, "ada@example.com")
    await _fail(client, "ada@example.com", 5)
    locked = await _attempt(client, "ada@example.com", PASSWORD)
    _locked(locked)
    # Case does not dodge the count: the username is case-folded.
    _locked(await _attempt(client, "ADA@Example.com", PASSWORD))

    lockouts = logs.find(lambda r: r["message"].startswith("login locked out"))
    assert len(lockouts) == 1 and lockouts[0]["user_id"] == user["id"]
    assert logs.find(lambda r: r["message"].startswith("login refused: rate limited"))
    failures = logs.find(lambda r: r["message"].startswith("login failed"))
    assert len(failures) == 5 and all(r["user_id"] == user["id"] for r in failures)
    assert WRONG not in logs.text and PASSWORD not in logs.text


async def test_concurrent_guesses_cannot_slip_past_the_limit(client: httpx.AsyncClient) -> None:
    # Each attempt is counted before its password is checked: of 10 simultaneous guesses,
    # only LOGIN_MAX_FAILURES (5) reach a password check.
    await register(client, "ada@example.com")
    answers = await asyncio.gather(*(_attempt(client, "ada@example.com", WRONG) for _ in range(10)))
    assert sorted(a.status_code for a in answers) == [400] * 5 + [429] * 5
    _locked(await _attempt(client, "ada@example.com", PASSWORD))


async def test_unknown_usernames_are_locked_the_same_way(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    await _fail(client, "ada@example.com", 5)
    await _fail(client, "nobody@example.com", 5)
    known = _locked(await _attempt(client, "ada@example.com", PASSWORD))
    unknown = _locked(await _attempt(client, "nobody@example.com", PASSWORD))
    assert known == unknown


async def test_a_success_resets_the_username_count(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    await _fail(client, "ada@example.com", 4)
    await login(client, "ada@example.com")
    await _fail(client, "ada@example.com", 4)  # would be locked without the reset
    await login(client, "ada@example.com")


async def test_the_lock_expires_after_the_window(settings: CoreSettings) -> None:
    # The three failures in parallel (each is counted when it starts) and a window of 6 s: the
    # lock must still be on when the fourth attempt comes, even on a loaded machine.
    users = UsersSettings(login_max_failures=3, login_failure_window=6)
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, "ada@example.com")
        failures = await asyncio.gather(
            *(_attempt(client, "ada@example.com", WRONG) for _ in range(3))
        )
        assert [f.status_code for f in failures] == [400] * 3
        locked = await _attempt(client, "ada@example.com", PASSWORD)
        _locked(locked, window=6)
        await asyncio.sleep(int(locked.headers["retry-after"]) + 0.2)
        await login(client, "ada@example.com")


async def test_one_address_failing_on_many_usernames_is_locked(settings: CoreSettings) -> None:
    users = UsersSettings(login_max_failures=2)  # per address: 2 x 4 = 8
    async with running_app(settings, users) as app:
        async with client_for(app, "192.0.2.10") as attacker:
            await register(attacker, "ada@example.com")
            for n in range(8):
                await _fail(attacker, f"user{n}@example.com", 1)
            # A username this address never tried, with its right password: refused.
            _locked(await _attempt(attacker, "ada@example.com", PASSWORD))
        async with client_for(app, "192.0.2.20") as someone_else:
            await login(someone_else, "ada@example.com")


async def test_counts_are_shared_between_instances_through_redis(
    settings: CoreSettings,
) -> None:
    redis_url = require_redis()
    shared = settings.model_copy(update={"redis_url": redis_url})
    users = UsersSettings(login_max_failures=3, login_failure_window=30)
    # Unique names and address: Redis outlives this test and is shared with other runs.
    email = f"ada-{uuid.uuid4().hex[:12]}@example.com"
    address = f"198.51.100.{uuid.uuid4().int % 250 + 1}"
    async with (
        running_app(shared, users) as first,
        running_app(shared, users) as second,
        client_for(first, address) as one,
        client_for(second, address) as two,
    ):
        await register(one, email)
        await _fail(one, email, 2)
        await _fail(two, email, 1)  # the third failure, on the other instance
        _locked(await _attempt(one, email, PASSWORD), window=30)
        _locked(await _attempt(two, email, PASSWORD), window=30)


async def test_redis_unreachable_falls_back_to_process_counts(settings: CoreSettings) -> None:
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    down = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    logs = LogCapture()
    async with running_app(down, UsersSettings(login_max_failures=2)) as app:
        sink_id = logger.add(logs.sink, level="DEBUG", format="{message}")  # after create_app
        try:
            async with client_for(app) as client:
                await register(client, "ada@example.com")
                wrong = await _attempt(client, "ada@example.com", PASSWORD.upper())
                assert_problem(wrong, 400, "LOGIN_BAD_CREDENTIALS")  # passwords checked
                await login(client, "ada@example.com")
                await _fail(client, "ada@example.com", 2)
                # Never no limit: counted in this process, locked like with Redis.
                _locked(await _attempt(client, "ada@example.com", PASSWORD))
                ready = (await client.get("/health/ready")).json()
                assert ready["status"] == "degraded"
                assert ready["checks"]["users.limiter"]["detail"] == {"store": "memory"}
        finally:
            logger.remove(sink_id)
    warnings = logs.find(lambda r: r["message"].startswith("rate limit store: Redis unreachable"))
    assert len(warnings) == 1 and warnings[0]["level"] == "WARNING"  # once, not per request


@pytest.mark.parametrize("field", ["username", "password"])
async def test_a_missing_field_is_a_validation_error_not_a_count(
    client: httpx.AsyncClient, field: str
) -> None:
    form = {"username": "ada@example.com", "password": PASSWORD}
    del form[field]
    response = await client.post("/auth/jwt/login", data=form)
    assert_problem(response, 422, "VALIDATION_ERROR")


async def test_the_schema_documents_the_429s(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (
        ("/auth/jwt/login", "post"),
        ("/auth/forgot-password", "post"),
        ("/auth/request-verify-token", "post"),
        ("/auth/register", "post"),
        # Wrong current_password guesses are limited like logins.
        ("/users/me", "patch"),
        ("/users/{id}", "patch"),
    ):
        documented = paths[path][method]["responses"]["429"]
        assert "RATE_LIMITED" in documented["content"]["application/problem+json"]["examples"]
        assert "Retry-After" in documented["headers"]
