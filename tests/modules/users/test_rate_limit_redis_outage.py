"""Redis down never means unlimited guessing: the limiter falls back to the counts of this
process (written there all along), readiness says `degraded`, and Redis decides again once it
answers. A black-holed Redis (SIGSTOP: connections accepted, no answer) costs at most the short
timeout of the `redis` circuit until it opens, then nothing.

Each test starts its own redis-server on a free loopback port, to stop or freeze it."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import CoreSettings
from modules.integrations.settings import IntegrationsSettings
from modules.users.settings import UsersSettings
from tests.helpers import PASSWORD, assert_problem, login, register
from tests.modules.users.apps import client_for, running_app
from tests.redis_server import RedisServer, throwaway_redis

WRONG = "not the password at all"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from throwaway_redis(tmp_path)


async def _attempt(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/jwt/login", data={"username": email, "password": password})


async def _fail(client: httpx.AsyncClient, email: str, times: int) -> None:
    for _ in range(times):
        assert_problem(await _attempt(client, email, WRONG), 400, "LOGIN_BAD_CREDENTIALS")


def _locked(response: httpx.Response) -> None:
    assert_problem(response, 429, "RATE_LIMITED")


async def _limiter_check(client: httpx.AsyncClient) -> dict[str, Any]:
    body = (await client.get("/health/ready")).json()
    check: dict[str, Any] = body["checks"]["users.limiter"]
    check["overall"] = body["status"]
    return check


async def test_redis_stopped_keeps_the_limits_and_redis_decides_again_when_back(
    settings: CoreSettings, redis_server: RedisServer
) -> None:
    shared = settings.model_copy(update={"redis_url": redis_server.url})
    users = UsersSettings(login_max_failures=3)
    integrations = IntegrationsSettings(breaker_threshold=2, breaker_ttl=1)
    async with (
        running_app(shared, users, integrations=integrations) as first,
        running_app(shared, users, integrations=integrations) as second,
        client_for(first, "192.0.2.70") as one,
        client_for(second, "192.0.2.71") as two,
    ):
        assert await _limiter_check(one) == {
            "status": "ok",
            "detail": {"store": "redis"},
            "overall": "ok",
        }
        await register(one, "ada@example.com")
        await register(one, "bob@example.com")
        await _fail(one, "ada@example.com", 3)
        _locked(await _attempt(one, "ada@example.com", PASSWORD))

        redis_server.stop()
        # The lock holds without Redis (this process counted the failures too) ...
        _locked(await _attempt(one, "ada@example.com", PASSWORD))
        _locked(await _attempt(one, "ada@example.com", WRONG))
        # ... and new failures are still counted, in process memory.
        await _fail(one, "bob@example.com", 3)
        _locked(await _attempt(one, "bob@example.com", PASSWORD))
        check = await _limiter_check(one)
        assert check == {"status": "degraded", "detail": {"store": "memory"}, "overall": "degraded"}

        redis_server.start()  # same port, empty
        await asyncio.sleep(1.2)  # BREAKER_TTL: the next call is the circuit's trial
        check = await _limiter_check(one)
        # (Other checks, e.g. the mail outbox, may take their own time to recover.)
        assert check["status"] == "ok" and check["detail"] == {"store": "redis"}, check
        # Shared again: failures counted by the first instance lock the account on the second.
        await register(one, "carol@example.com")
        await _fail(one, "carol@example.com", 3)
        _locked(await _attempt(two, "carol@example.com", PASSWORD))
        await login(two, "bob@example.com")  # only the first instance counted bob (in memory)
        # Redis came back empty: it missed bob's failures, the first instance did not. The
        # stricter count decides, so the lock it saw does not end because Redis forgot it.
        _locked(await _attempt(one, "bob@example.com", PASSWORD))


async def _timed_attempt(client: httpx.AsyncClient, email: str, password: str) -> float:
    started = time.perf_counter()
    response = await _attempt(client, email, password)
    assert response.status_code in {200, 400}, response.text
    return time.perf_counter() - started


async def test_a_black_holed_redis_costs_a_short_timeout_then_nothing(
    settings: CoreSettings, redis_server: RedisServer
) -> None:
    """It cost 2.8 s per login (several 0.5 s socket timeouts per attempt, every attempt)."""
    shared = settings.model_copy(update={"redis_url": redis_server.url})
    users = UsersSettings(login_max_failures=3)
    app: FastAPI
    async with running_app(shared, users) as app, client_for(app, "192.0.2.80") as client:
        await register(client, "ada@example.com")
        await register(client, "bob@example.com")
        healthy = [await _timed_attempt(client, "ada@example.com", PASSWORD) for _ in range(3)]

        redis_server.freeze()
        frozen = [await _timed_attempt(client, "ada@example.com", PASSWORD) for _ in range(6)]
        # The first attempts wait REDIS_TIMEOUT (0.25 s) per call until the circuit opens
        # (BREAKER_THRESHOLD failures); then Redis costs nothing.
        assert statistics.median(frozen[-4:]) < statistics.median(healthy) + 0.5, (healthy, frozen)
        assert sum(frozen) < sum(healthy) * 2 + 3, (healthy, frozen)
        # Limits hold while it is frozen.
        await _fail(client, "bob@example.com", 3)
        _locked(await _attempt(client, "bob@example.com", PASSWORD))
        check = await _limiter_check(client)
        assert check["status"] == "degraded" and check["detail"] == {"store": "memory"}
        redis_server.thaw()
