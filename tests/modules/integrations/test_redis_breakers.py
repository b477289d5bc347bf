"""Breaker state shared through Redis (REDIS_URL): one instance opens, the others see it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis import asyncio as aioredis

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations import CircuitOpenError, UpstreamError
from modules.integrations.breakers import Breakers
from tests.conftest import LogCapture
from tests.modules.integrations.conftest import THRESHOLD, TTL
from tests.services import require_redis
from tests.upstreams import closed_port_url

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    return require_redis()


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A key namespace of this test's own, removed afterwards."""
    value = f"test:circuit:{uuid.uuid4().hex}:"
    yield value
    client = aioredis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(match=f"{value}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def failing() -> None:
    raise UpstreamError("shared", "answered 500", status_code=500)


async def test_two_instances_see_the_same_open_circuit(redis_url: str, prefix: str) -> None:
    first = Breakers(threshold=THRESHOLD, ttl=30, redis_url=redis_url, key_prefix=prefix)
    second = Breakers(threshold=THRESHOLD, ttl=30, redis_url=redis_url, key_prefix=prefix)
    for owner in (first, second):
        owner.circuit("shared")
        await owner.start()
    try:
        for _ in range(THRESHOLD):
            with pytest.raises(UpstreamError):
                await first.circuit("shared").call(failing)

        calls = 0

        async def counted() -> None:
            nonlocal calls
            calls += 1

        with pytest.raises(CircuitOpenError):
            await second.circuit("shared").call(counted)
        assert calls == 0  # the second instance never called the upstream
        state = (await second.snapshot())["shared"]
        assert state.state == "open" and state.opened_at is not None
    finally:
        await first.close()
        await second.close()


async def test_failures_add_up_across_instances(redis_url: str, prefix: str) -> None:
    first = Breakers(threshold=2, ttl=30, redis_url=redis_url, key_prefix=prefix)
    second = Breakers(threshold=2, ttl=30, redis_url=redis_url, key_prefix=prefix)
    try:
        with pytest.raises(UpstreamError):
            await first.circuit("shared").call(failing)
        with pytest.raises(UpstreamError):
            await second.circuit("shared").call(failing)
        assert (await first.circuit("shared").state()).state == "open"
    finally:
        await first.close()
        await second.close()


async def test_a_success_after_the_ttl_closes_it_for_everyone(redis_url: str, prefix: str) -> None:
    first = Breakers(threshold=1, ttl=TTL, redis_url=redis_url, key_prefix=prefix)
    second = Breakers(threshold=1, ttl=TTL, redis_url=redis_url, key_prefix=prefix)
    try:
        with pytest.raises(UpstreamError):
            await first.circuit("shared").call(failing)
        await asyncio.sleep(TTL + 0.05)

        async def fine() -> str:
            return "ok"

        assert await second.circuit("shared").call(fine) == "ok"
        state = await first.circuit("shared").state()
        assert (state.state, state.failures) == ("closed", 0)
    finally:
        await first.close()
        await second.close()


async def test_unreachable_redis_falls_back_to_local_state(logs: LogCapture) -> None:
    owner = Breakers(threshold=THRESHOLD, ttl=30, redis_url=closed_port_url("redis"))
    owner.circuit("local")
    try:
        await owner.start()  # starts anyway
        assert (await owner.snapshot())["local"].state == "closed"
        for _ in range(THRESHOLD):
            with pytest.raises(UpstreamError):
                await owner.circuit("local").call(failing)
        with pytest.raises(CircuitOpenError):
            await owner.circuit("local").call(failing)
    finally:
        await owner.close()
    assert len(logs.find(lambda r: "circuit state store unreachable" in r["message"])) == 1


async def _breaker_clients(redis_url: str) -> list[str]:
    client = aioredis.from_url(redis_url)
    try:
        listing = await client.client_list()
    finally:
        await client.aclose()
    return [c["name"] for c in listing if c["name"] == f"gatehouse-breakers-{os.getpid()}"]


@pytest.fixture
async def app_keys(redis_url: str) -> AsyncIterator[None]:
    """The app uses the real key namespace: remove what this test created there."""
    client = aioredis.from_url(redis_url)
    keys = ["gatehouse:circuit:mail", "gatehouse:circuit:mail::failure_count"]
    existing = {key for key in keys if await client.exists(key)}
    yield
    if missing := [key for key in keys if key not in existing]:
        await client.delete(*missing)
    await client.aclose()


@pytest.mark.usefixtures("app_keys")
async def test_the_app_shares_state_through_redis_and_closes_it_at_shutdown(
    settings: CoreSettings, redis_url: str
) -> None:
    app: FastAPI = create_app(settings.model_copy(update={"redis_url": redis_url}))
    async with app.router.lifespan_context(app):
        assert app.state.integrations.breakers.redis is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            ready = await client.get("/health/ready")
        circuits = ready.json()["checks"]["integrations.circuits"]["detail"]
        assert circuits["mail"]["state"] == "closed"
        assert await _breaker_clients(redis_url) != []
    assert await _breaker_clients(redis_url) == []


async def test_half_open_lets_one_trial_through_per_instance(redis_url: str, prefix: str) -> None:
    # In Redis the circuit stays "opened" until the trial ends; the gate still holds.
    owner = Breakers(threshold=1, ttl=TTL, redis_url=redis_url, key_prefix=prefix)
    try:
        with pytest.raises(UpstreamError):
            await owner.circuit("shared").call(failing)
        await asyncio.sleep(TTL + 0.05)
        calls = 0

        async def slow() -> str:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.2)
            return "ok"

        outcomes = await asyncio.gather(
            *(owner.circuit("shared").call(slow) for _ in range(5)), return_exceptions=True
        )
        assert outcomes.count("ok") == 1 and calls == 1
        assert all(isinstance(o, CircuitOpenError) for o in outcomes if o != "ok")
        assert (await owner.circuit("shared").state()).state == "closed"
    finally:
        await owner.close()


async def test_a_new_threshold_takes_effect_in_the_shared_store(
    redis_url: str, prefix: str, logs: LogCapture
) -> None:
    old = Breakers(threshold=5, ttl=30, redis_url=redis_url, key_prefix=prefix)
    old.circuit("shared")
    await old.start()
    await old.close()

    new = Breakers(threshold=2, ttl=30, redis_url=redis_url, key_prefix=prefix)
    new.circuit("shared")
    try:
        await new.start()
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await new.circuit("shared").call(failing)
        assert (await new.circuit("shared").state()).state == "open"
    finally:
        await new.close()
    assert logs.find(lambda r: "retuned in the shared store: threshold 2" in r["message"])
