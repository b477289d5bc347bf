"""forgot-password and request-verify-token: the same answer for known and unknown accounts,
given before any account work is done; the mail still reaches a known account."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.settings import CoreSettings
from modules.users.settings import UsersSettings
from tests.helpers import PASSWORD, assert_problem, login, register
from tests.mail import sent_mail, token_in, wait_for_mail
from tests.modules.users.apps import client_for, running_app


def _comparable(response: httpx.Response) -> tuple[int, bytes, str | None]:
    return response.status_code, response.content, response.headers.get("content-type")


@pytest.mark.parametrize(
    ("path", "subject"),
    [("/auth/forgot-password", "Reset"), ("/auth/request-verify-token", "Confirm")],
)
async def test_known_and_unknown_accounts_get_the_same_answer_and_only_known_get_mail(
    client: httpx.AsyncClient, app: FastAPI, path: str, subject: str
) -> None:
    await register(client, "ada@example.com")
    known = await client.post(path, json={"email": "ada@example.com"})
    unknown = await client.post(path, json={"email": "nobody@example.com"})
    assert known.status_code == 202
    assert _comparable(known) == _comparable(unknown)

    await wait_for_mail(app, "ada@example.com", subject)
    await app.state.background.drain()
    assert [m.to for m in sent_mail(app)] == ["ada@example.com"]


async def test_the_reset_mail_resets_the_password_once(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, "ada@example.com")
    await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    token = token_in(await wait_for_mail(app, "ada@example.com", "Reset"))
    new = "a brand new passphrase"
    assert (
        await client.post("/auth/reset-password", json={"token": token, "password": new})
    ).status_code == 204
    await login(client, "ada@example.com", new)
    again = await client.post(
        "/auth/reset-password", json={"token": token, "password": "yet another passphrase"}
    )
    assert_problem(again, 400, "RESET_PASSWORD_BAD_TOKEN")  # the fingerprint changed


async def test_the_verification_mail_verifies(client: httpx.AsyncClient, app: FastAPI) -> None:
    await register(client, "ada@example.com")
    await client.post("/auth/request-verify-token", json={"email": "ada@example.com"})
    token = token_in(await wait_for_mail(app, "ada@example.com", "Confirm"))
    verified = await client.post("/auth/verify", json={"token": token})
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_verified"] is True


async def test_forgot_password_is_rate_limited_per_email_alike_for_unknown_accounts(
    settings: CoreSettings,
) -> None:
    users = UsersSettings(login_max_failures=2)
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, "ada@example.com")
        refusals = []
        for email in ("ada@example.com", "nobody@example.com"):
            for _ in range(2):
                ok = await client.post("/auth/forgot-password", json={"email": email})
                assert ok.status_code == 202
            refused = await client.post("/auth/forgot-password", json={"email": email})
            body = assert_problem(refused, 429, "RATE_LIMITED")
            assert 1 <= int(refused.headers["retry-after"]) <= 900
            del body["request_id"]
            refusals.append(body)
        assert refusals[0] == refusals[1]
        # Another email from the same address is still served (the address allows 4x).
        other = await client.post("/auth/forgot-password", json={"email": "eve@example.com"})
        assert other.status_code == 202
        await app.state.background.drain()
        assert [m.to for m in sent_mail(app)] == ["ada@example.com"] * 2


async def test_forgot_password_is_rate_limited_per_address(settings: CoreSettings) -> None:
    async with running_app(settings, UsersSettings(login_max_failures=1)) as app:
        async with client_for(app) as client:
            for n in range(4):  # 4 = LOGIN_MAX_FAILURES x 4
                email = f"u{n}@example.com"
                answer = await client.post("/auth/forgot-password", json={"email": email})
                assert answer.status_code == 202
            refused = await client.post("/auth/forgot-password", json={"email": "u9@example.com"})
            assert_problem(refused, 429, "RATE_LIMITED")
        async with client_for(app, "127.0.0.2") as other:
            answer = await other.post("/auth/forgot-password", json={"email": "u9@example.com"})
            assert answer.status_code == 202


async def test_login_still_works_after_a_reset_request(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    # Asking for a reset changes nothing until the token is used.
    await register(client, "ada@example.com")
    await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    await wait_for_mail(app, "ada@example.com", "Reset")
    await login(client, "ada@example.com", PASSWORD)


async def test_a_reset_requested_just_before_shutdown_is_still_mailed(app: FastAPI) -> None:
    """The factory drains background work before any module closes (database, mailer)."""
    async with app.router.lifespan_context(app), client_for(app) as client:
        await register(client, "ada@example.com")
        response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
        assert response.status_code == 202
    # The lifespan has ended: the job ran (lookup, token) and the mail went.
    assert [m.to for m in sent_mail(app)] == ["ada@example.com"]
