"""Verification, password reset, profile update and the superuser routes, over HTTP."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.conftest import LogCapture
from tests.helpers import (
    PASSWORD,
    assert_problem,
    bearer,
    login,
    register,
)
from tests.mail import token_in, wait_for_mail

NEW_PASSWORD = "another quite long passphrase"


async def _make_superuser(app: FastAPI, email: str) -> None:
    from sqlalchemy import update

    from modules.users.models import User

    async with app.state.database.sessionmaker() as session:
        # fastapi-users types its columns as plain attributes: go through the table.
        table = User.metadata.tables["user"]
        await session.execute(update(table).where(table.c.email == email).values(is_superuser=True))
        await session.commit()


async def test_verify_flow(app: FastAPI, client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    response = await client.post("/auth/request-verify-token", json={"email": "ada@example.com"})
    assert response.status_code == 202
    mail = await wait_for_mail(app, "ada@example.com", "Confirm")
    token = token_in(mail)
    assert mail.body.count("http://127.0.0.1:8000/auth/verify?token=") == 1

    verified = await client.post("/auth/verify", json={"token": token})
    assert verified.status_code == 200
    assert verified.json()["is_verified"] is True
    again = await client.post("/auth/verify", json={"token": token})
    assert_problem(again, 400, "VERIFY_USER_ALREADY_VERIFIED")
    bogus = await client.post("/auth/verify", json={"token": "not-a-token"})
    assert_problem(bogus, 400, "VERIFY_USER_BAD_TOKEN")


async def test_request_verify_for_unknown_email_is_202(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/request-verify-token", json={"email": "nobody@example.com"})
    assert response.status_code == 202


async def test_reset_flow_is_single_use(app: FastAPI, client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    assert response.status_code == 202
    token = token_in(await wait_for_mail(app, "ada@example.com", "Reset"))

    reset = await client.post(
        "/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    await login(client, "ada@example.com", NEW_PASSWORD)
    old = await client.post(
        "/auth/jwt/login", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert_problem(old, 400, "LOGIN_BAD_CREDENTIALS")
    # The token dies with the password it was issued for.
    replay = await client.post(
        "/auth/reset-password", json={"token": token, "password": "yet another passphrase"}
    )
    assert_problem(replay, 400, "RESET_PASSWORD_BAD_TOKEN")


async def test_forgot_password_for_unknown_email_is_202(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/forgot-password", json={"email": "nobody@example.com"})
    assert response.status_code == 202


async def test_reset_with_bad_token_and_weak_password(client: httpx.AsyncClient) -> None:
    bad = await client.post(
        "/auth/reset-password", json={"token": "forged", "password": NEW_PASSWORD}
    )
    assert_problem(bad, 400, "RESET_PASSWORD_BAD_TOKEN")


async def test_patch_me_changes_the_password(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    short = await client.patch(
        "/users/me",
        json={"password": "short", "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert_problem(short, 400, "UPDATE_USER_INVALID_PASSWORD")
    changed = await client.patch(
        "/users/me",
        json={"password": NEW_PASSWORD, "current_password": PASSWORD},
        headers=bearer(tokens["access_token"]),
    )
    assert changed.status_code == 200
    assert "current_password" not in changed.json()
    await login(client, "ada@example.com", NEW_PASSWORD)


async def test_changing_the_password_needs_the_current_one(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    for proof in ({}, {"current_password": "not the password"}, {"current_password": ""}):
        refused = await client.patch(
            "/users/me",
            json={"password": NEW_PASSWORD, **proof},
            headers=bearer(tokens["access_token"]),
        )
        body = assert_problem(refused, 400, "UPDATE_USER_INVALID_PASSWORD")
        assert "current password" in body["detail"]
    await login(client, "ada@example.com", PASSWORD)  # unchanged
    assert logs.find(lambda r: "password change refused" in r["message"])
    assert "not the password" not in logs.text
    # A new email needs it too (test_email_change.py); other fields do not.
    renamed = await client.patch(
        "/users/me", json={"email": "ada@example.org"}, headers=bearer(tokens["access_token"])
    )
    assert_problem(renamed, 400, "UPDATE_USER_INVALID_PASSWORD")


async def test_user_cannot_make_itself_superuser(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    response = await client.patch(
        "/users/me", json={"is_superuser": True}, headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 200
    assert response.json()["is_superuser"] is False


async def test_superuser_routes(app: FastAPI, client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada@example.com")
    await register(client, "root@example.com")
    await _make_superuser(app, "root@example.com")
    root = bearer((await login(client, "root@example.com"))["access_token"])
    user = bearer((await login(client, "ada@example.com"))["access_token"])

    assert_problem(await client.get(f"/users/{ada['id']}", headers=user), 403, "FORBIDDEN")
    assert_problem(await client.get(f"/users/{ada['id']}"), 401, "UNAUTHORIZED")
    assert (await client.get(f"/users/{ada['id']}", headers=root)).json()["email"] == (
        "ada@example.com"
    )
    assert_problem(await client.get(f"/users/{uuid.uuid4()}", headers=root), 404, "NOT_FOUND")
    assert_problem(await client.get("/users/not-a-uuid", headers=root), 404, "NOT_FOUND")

    patched = await client.patch(f"/users/{ada['id']}", json={"is_verified": True}, headers=root)
    assert patched.json()["is_verified"] is True
    deleted = await client.delete(f"/users/{ada['id']}", headers=root)
    assert deleted.status_code == 204
    assert_problem(await client.get(f"/users/{ada['id']}", headers=root), 404, "NOT_FOUND")


async def test_patch_me_with_null_fields_is_a_validation_error(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    for field in ("email", "password"):
        response = await client.patch(
            "/users/me", json={field: None}, headers=bearer(tokens["access_token"])
        )
        body = assert_problem(response, 422, "VALIDATION_ERROR")
        assert body["errors"][0]["loc"] == ["body", field]
    me = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me.json()["email"] == "ada@example.com"
