"""One canonical form of an address (NFKC, lower-cased) on every path: register, login, the
limiter, the unique index; racing registrations get the standard 400, never a 500."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from fastapi import FastAPI

from app.settings import CoreSettings
from modules.users.settings import UsersSettings
from tests.helpers import PASSWORD, assert_problem, login, register
from tests.mail import wait_for_mail
from tests.modules.users.apps import client_for, running_app

WRONG = "not the password at all"


async def _register(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/auth/register", json={"email": email, "password": PASSWORD})


async def test_a_full_width_address_registers_and_then_logs_in(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await register(client, "Ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com")
    assert created["email"] == "ada@example.com"
    # Each spelling of the one address reaches the one account.
    for spelling in (
        "ada@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com",
        "ADA@EXAMPLE.COM",
        "\uff21da@example.com",
    ):
        await login(client, spelling)
    again = await _register(client, "\uff21DA@Example.com")
    assert_problem(again, 400, "REGISTER_USER_ALREADY_EXISTS")
    # forgot-password with another spelling mails the stored address.
    answer = await client.post("/auth/forgot-password", json={"email": "ADA@\uff25xample.com"})
    assert answer.status_code == 202
    await wait_for_mail(app, "ada@example.com", "Reset")


async def test_racing_case_variants_make_one_account(client: httpx.AsyncClient) -> None:
    local = f"dup{uuid.uuid4().hex[:8]}"
    variants = [f"{local}@example.com", f"{local.upper()}@example.com"]
    variants += [f"D{local[1:]}@Example.com", f"{local[:2]}P{local[3:]}@EXAMPLE.com"]
    answers = await asyncio.gather(*(_register(client, v) for v in variants))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 400, 400, 400], [a.text for a in answers]
    for answer in answers:
        if answer.status_code == 400:
            assert_problem(answer, 400, "REGISTER_USER_ALREADY_EXISTS")
    # Afterwards the address works: no MultipleResultsFound, for login or register.
    for variant in variants:
        await login(client, variant)
    assert_problem(await _register(client, variants[0]), 400, "REGISTER_USER_ALREADY_EXISTS")


async def test_racing_identical_registrations_get_the_standard_400(
    client: httpx.AsyncClient,
) -> None:
    email = f"same{uuid.uuid4().hex[:8]}@example.com"
    answers = await asyncio.gather(*(_register(client, email) for _ in range(5)))
    assert sorted(a.status_code for a in answers) == [201, 400, 400, 400, 400], [
        a.text for a in answers
    ]
    for answer in answers:
        if answer.status_code == 400:
            assert_problem(answer, 400, "REGISTER_USER_ALREADY_EXISTS")
    await login(client, email)


async def test_the_login_limit_counts_every_spelling_that_reaches_the_account(
    settings: CoreSettings,
) -> None:
    """PostgreSQL's lower('İ') is 'i': there the old lookup took `İx@` to the account of
    `ix@` while the limiter counted `İx@` in a bucket of its own. Now a spelling either is the
    account's canonical address (one bucket) or is another address (another account)."""
    users = UsersSettings(login_max_failures=2)
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, "ix@example.com")
        for spelling in ("IX@example.com", "ix@EXAMPLE.com"):
            failed = await client.post(
                "/auth/jwt/login", data={"username": spelling, "password": WRONG}
            )
            assert_problem(failed, 400, "LOGIN_BAD_CREDENTIALS")
        for spelling in ("ix@example.com", "\uff49x@example.com", "\u0130x@example.com"):
            attempt = await client.post(
                "/auth/jwt/login", data={"username": spelling, "password": PASSWORD}
            )
            # Locked (429), or a different address that is no account (400): never in.
            assert attempt.status_code in (400, 429), (spelling, attempt.text)
        locked = await client.post(
            "/auth/jwt/login", data={"username": "ix@example.com", "password": PASSWORD}
        )
        assert_problem(locked, 429, "RATE_LIMITED")
        assert int(locked.headers["retry-after"]) >= 1
