"""Reset and verify tokens: bound to the address and password they were mailed for, used up
by one conditional update (of racing uses, one wins), and cheap to make and check (no hash in
the shared pool for a public endpoint). Password changes and resets are mailed to the account."""

from __future__ import annotations

import asyncio
import threading

import httpx
from fastapi import FastAPI

from app.settings import CoreSettings
from modules.users.settings import UsersSettings
from tests.helpers import PASSWORD, assert_problem, bearer, login, register
from tests.mail import sent_mail, token_in, wait_for_mail
from tests.modules.users.apps import client_for, running_app

OLD = "ada@example.com"
NEW = "ada@example.org"
NEW_PASSWORD = "another long passphrase for ada"


async def _reset_token(client: httpx.AsyncClient, app: FastAPI, email: str) -> str:
    assert (await client.post("/auth/forgot-password", json={"email": email})).status_code == 202
    return token_in(await wait_for_mail(app, email, "Reset"))


async def _verify_token(client: httpx.AsyncClient, app: FastAPI, email: str) -> str:
    answer = await client.post("/auth/request-verify-token", json={"email": email})
    assert answer.status_code == 202
    return token_in(await wait_for_mail(app, email, "Confirm"))


async def test_an_email_change_kills_the_tokens_mailed_to_the_old_address(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, OLD)
    reset = await _reset_token(client, app, OLD)
    verify = await _verify_token(client, app, OLD)
    tokens = await login(client, OLD)
    changed = await client.patch(
        "/users/me",
        json={"email": NEW, "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200, changed.text

    used = await client.post(
        "/auth/reset-password", json={"token": reset, "password": NEW_PASSWORD}
    )
    assert_problem(used, 400, "RESET_PASSWORD_BAD_TOKEN")
    assert_problem(
        await client.post("/auth/verify", json={"token": verify}), 400, "VERIFY_USER_BAD_TOKEN"
    )
    await login(client, NEW, PASSWORD)  # the password did not change
    me = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me.json()["is_verified"] is False
    # A token mailed to the new address works.
    fresh = await _reset_token(client, app, NEW)
    ok = await client.post("/auth/reset-password", json={"token": fresh, "password": NEW_PASSWORD})
    assert ok.status_code == 204, ok.text


async def test_parallel_resets_with_one_token_have_one_winner(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, OLD)
    token = await _reset_token(client, app, OLD)
    passwords = [f"{NEW_PASSWORD} number {n}" for n in range(5)]
    answers = await asyncio.gather(
        *(
            client.post("/auth/reset-password", json={"token": token, "password": p})
            for p in passwords
        )
    )
    winners = [p for p, a in zip(passwords, answers, strict=True) if a.status_code == 204]
    assert len(winners) == 1, [a.text for a in answers]
    for answer in answers:
        if answer.status_code != 204:
            assert_problem(answer, 400, "RESET_PASSWORD_BAD_TOKEN")
    await login(client, OLD, winners[0])  # the winner's password is the one stored


async def test_parallel_verifies_with_one_token_have_one_winner(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, OLD)
    token = await _verify_token(client, app, OLD)
    answers = await asyncio.gather(
        *(client.post("/auth/verify", json={"token": token}) for _ in range(5))
    )
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400, 400], [
        a.text for a in answers
    ]
    for answer in answers:
        if answer.status_code != 200:
            assert_problem(answer, 400, "VERIFY_USER_ALREADY_VERIFIED")
    me = await client.post("/auth/jwt/login", data={"username": OLD, "password": PASSWORD})
    assert me.status_code == 200


async def test_a_reset_request_for_a_known_account_needs_no_hashing_thread(
    settings: CoreSettings,
) -> None:
    """The pool's only thread is held busy: the reset mail for a known account still goes out,
    so the request puts nothing in the pool's queue (known or unknown alike) and cannot slow
    the next login or register down for known accounts only."""
    users = UsersSettings(password_hash_workers=1)
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, OLD)
        release = threading.Event()
        busy = asyncio.ensure_future(app.state.users.hasher.run(release.wait, 30))
        try:
            for email in (OLD, "nobody@example.com"):
                answer = await client.post("/auth/forgot-password", json={"email": email})
                assert answer.status_code == 202
            token = token_in(await wait_for_mail(app, OLD, "Reset", timeout=5))
            await app.state.background.drain()
        finally:
            release.set()
            await busy
        reset = await client.post(
            "/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert reset.status_code == 204, reset.text


async def test_password_changes_and_resets_are_mailed_to_the_account(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, OLD)
    tokens = await login(client, OLD)
    changed = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200, changed.text
    notice = await wait_for_mail(app, OLD, "Your password was changed")
    assert "forgot-password" in notice.body
    assert NEW_PASSWORD not in notice.body

    token = await _reset_token(client, app, OLD)
    reset = await client.post("/auth/reset-password", json={"token": token, "password": PASSWORD})
    assert reset.status_code == 204, reset.text
    await wait_for_mail(app, OLD, "Your password was reset")
    subjects = [m.subject for m in sent_mail(app) if m.to == OLD]
    assert subjects == [
        "Your password was changed",
        "Reset your password",
        "Your password was reset",
    ]
