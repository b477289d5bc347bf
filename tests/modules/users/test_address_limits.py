"""Per client address: failed logins under real concurrency (in memory and through Redis),
successful logins (LOGINS_PER_ADDRESS), registrations (REGISTRATIONS_PER_ADDRESS), and a
register answer that takes as long for a known email as for a new one."""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import uuid

import httpx
import pytest
from loguru import logger

from app.settings import CoreSettings
from modules.users.exceptions import RateLimited
from modules.users.ratelimit import AuthLimiter, LoginAttempt
from modules.users.ratelimit_stores import RedisLimitStore
from modules.users.settings import UsersSettings
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, assert_problem, login, register
from tests.modules.users.apps import client_for, running_app
from tests.services import require_redis

WRONG = "not the password at all"


def _address() -> str:
    # Unique per test run: Redis outlives the test and is shared with other runs.
    return f"198.18.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250 + 1}"


async def _guess(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/auth/jwt/login", data={"username": username, "password": password})


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_parallel_guesses_from_one_address_cannot_pass_its_limit(
    settings: CoreSettings, store: str
) -> None:
    """50 simultaneous guesses at 50 usernames from one address, limit 8 failures: at most 8
    reach a password check (all 50 did before the in-flight reservation; the audit saw 50 of 50
    with the default limit of 20). A small limit keeps the database pool out of the test."""
    if store == "redis":
        settings = settings.model_copy(update={"redis_url": require_redis()})
    users = UsersSettings(login_max_failures=2)  # per address: 2 x 4 = 8
    run = uuid.uuid4().hex[:10]
    async with running_app(settings, users) as app, client_for(app, _address()) as client:
        answers = await asyncio.gather(
            *(_guess(client, f"u{n}-{run}@example.com", WRONG) for n in range(50))
        )
        statuses = [a.status_code for a in answers]
        checked = statuses.count(400)
        assert 1 <= checked <= 8 and statuses.count(429) == 50 - checked, statuses
        for answer in answers:
            if answer.status_code == 429:
                assert_problem(answer, 429, "RATE_LIMITED")
                assert int(answer.headers["retry-after"]) >= 1
        # Whatever raced, the budget is spent once 8 failures are in: the next one is refused.
        for n in range(8 - checked):
            await _guess(client, f"late{n}-{run}@example.com", WRONG)
        assert (await _guess(client, f"last-{run}@example.com", WRONG)).status_code == 429


async def test_successful_logins_per_address_are_budgeted(settings: CoreSettings) -> None:
    users = UsersSettings(logins_per_address=3)
    async with running_app(settings, users) as app:
        async with client_for(app, "192.0.2.30") as office:
            await register(office, "ada@example.com")
            for _ in range(3):
                await login(office, "ada@example.com")
            refused = await _guess(office, "ada@example.com", PASSWORD)
            assert_problem(refused, 429, "RATE_LIMITED")
            assert int(refused.headers["retry-after"]) >= 1
        async with client_for(app, "192.0.2.31") as elsewhere:
            await login(elsewhere, "ada@example.com")


async def test_registrations_per_address_are_limited_even_in_parallel(
    settings: CoreSettings,
) -> None:
    users = UsersSettings(registrations_per_address=3)
    async with running_app(settings, users) as app:
        async with client_for(app, "192.0.2.40") as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/auth/register",
                        json={"email": f"user{n}@example.com", "password": PASSWORD},
                    )
                    for n in range(8)
                )
            )
            statuses = sorted(a.status_code for a in answers)
            assert statuses == [201] * 3 + [429] * 5, statuses
            refused = next(a for a in answers if a.status_code == 429)
            assert_problem(refused, 429, "RATE_LIMITED")
            assert int(refused.headers["retry-after"]) >= 1
            # A known email counts too (register must not be an unlimited existence oracle).
            again = await client.post(
                "/auth/register", json={"email": "user0@example.com", "password": PASSWORD}
            )
            assert_problem(again, 429, "RATE_LIMITED")
        async with client_for(app, "192.0.2.41") as other:
            await register(other, "someone@example.com")


async def test_register_answers_a_known_email_as_slowly_as_a_new_one(
    client: httpx.AsyncClient,
) -> None:
    """The standard 400 REGISTER_USER_ALREADY_EXISTS stays; its timing no longer tells (it
    answered in ~15 ms against ~250 ms: only new accounts were hashed)."""
    await register(client, "known@example.com")

    async def timed(email: str) -> float:
        started = time.perf_counter()
        response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
        elapsed = time.perf_counter() - started
        if email == "known@example.com":
            assert_problem(response, 400, "REGISTER_USER_ALREADY_EXISTS")
        else:
            assert response.status_code == 201, response.text
        return elapsed

    known, new = [], []
    for n in range(6):  # interleaved, so load on the machine hits both alike
        known.append(await timed("known@example.com"))
        new.append(await timed(f"new{n}@example.com"))
    ratio = statistics.median(known) / statistics.median(new)
    assert ratio > 0.6, (known, new)


async def test_memory_counts_survive_concurrent_successes_without_false_errors(
    settings: CoreSettings,
) -> None:
    """No false ERROR line under concurrent logins, successes clearing usernames while limits'
    in-memory expiry task walks the keys (it crashed: KeyError, "Task exception was never
    retrieved"; test_ratelimit_stores.py shows the crash deterministically)."""
    users = UsersSettings(login_max_failures=100)  # room for many counted keys per address
    logs = LogCapture()
    async with running_app(settings, users) as app, client_for(app, "192.0.2.60") as client:
        sink_id = logger.add(logs.sink, level="DEBUG", format="{message}")  # after create_app
        try:
            emails = [f"ok{n}@example.com" for n in range(3)]
            for email in emails:
                await register(client, email)
            # Many counted keys (forgot-password costs no hash): the expiry walk gets long.
            forgot = await asyncio.gather(
                *(
                    client.post("/auth/forgot-password", json={"email": f"x{n}@example.com"})
                    for n in range(300)
                )
            )
            assert {a.status_code for a in forgot} == {202}

            async def logins(email: str) -> list[int]:
                return [(await _guess(client, email, PASSWORD)).status_code for _ in range(3)]

            async def more_requests() -> None:
                # Each counted request may start another walk over every key.
                for n in range(60):
                    await client.post("/auth/forgot-password", json={"email": f"y{n}@example.com"})

            *answers, _ = await asyncio.gather(*(logins(e) for e in emails), more_requests())
            assert answers == [[200] * 3] * 3
            await asyncio.sleep(0.5)  # let the expiry tasks finish
            gc.collect()  # asyncio reports an unretrieved task exception at collection
            await asyncio.sleep(0)
        finally:
            logger.remove(sink_id)
    errors = logs.find(lambda r: r["level"] in {"ERROR", "CRITICAL"})
    assert errors == [], errors


class _FirstReservationHeld(RedisLimitStore):
    """The real Redis store, except that its first in-flight reservation waits for `gate`:
    parallel attempts then reach Redis in another order than they reached process memory,
    as they do under load when Redis answers one connection before another."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.holding = False
        self.gate = asyncio.Event()

    async def reserve(self, key: str) -> int:
        if not self.holding:
            self.holding = True
            await self.gate.wait()
        return await super().reserve(key)


async def test_attempts_reaching_redis_out_of_order_are_admitted_up_to_the_limit() -> None:
    """Five parallel attempts, limit 4 per address. The first reserves its memory slot first
    but its Redis slot last. Exactly four may go on, whatever the order: the in-flight view is
    Redis's count (plus attempts that hold no Redis slot), not the larger of two positions
    taken in two different orders (that refused the last attempt in memory's order too, so
    three went on; under a burst of 50 it refused all 50)."""
    store = _FirstReservationHeld(require_redis())
    limiter = AuthLimiter(UsersSettings(login_max_failures=1), store)  # per address: 1 x 4
    address, run = _address(), uuid.uuid4().hex[:10]

    async def attempt(n: int) -> LoginAttempt | None:
        try:
            return await limiter.begin_login(f"o{n}-{run}@example.com", address)
        except RateLimited:
            return None

    try:
        first = asyncio.create_task(attempt(0))
        while not store.holding:  # the first attempt holds its memory slot, not yet Redis's
            await asyncio.sleep(0.01)
        others = await asyncio.gather(*(attempt(n) for n in range(1, 5)))
        store.gate.set()
        held = await first
        admitted = [a for a in [held, *others] if a is not None]
        assert [a is not None for a in others] == [True] * 4
        assert held is None  # fifth in Redis: over the limit
        for admitted_attempt in admitted:
            await limiter.end_login(admitted_attempt, "abandoned")
        # Every slot was given back: four more may go on again.
        again = await asyncio.gather(*(attempt(n) for n in range(5, 9)))
        assert all(a is not None for a in again)
        for later in again:
            assert later is not None
            await limiter.end_login(later, "abandoned")
    finally:
        await limiter.close()
