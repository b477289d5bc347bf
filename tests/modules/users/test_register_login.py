"""The standard fastapi-users flows at the spec's paths, over HTTP."""

from __future__ import annotations

import httpx

from tests.helpers import PASSWORD, assert_problem, bearer, login, register


async def test_register_login_me(client: httpx.AsyncClient) -> None:
    user = await register(client, "ada@example.com")
    assert user["email"] == "ada@example.com"
    assert user["is_active"] is True and user["is_superuser"] is False
    assert "hashed_password" not in user and "password" not in user

    tokens = await login(client, "ada@example.com")
    assert tokens["token_type"] == "bearer"

    me = await client.get("/users/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]


async def test_wrong_password_and_unknown_user_answer_alike(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    wrong = await client.post(
        "/auth/jwt/login", data={"username": "ada@example.com", "password": "not the password"}
    )
    unknown = await client.post(
        "/auth/jwt/login", data={"username": "nobody@example.com", "password": PASSWORD}
    )
    for response in (wrong, unknown):
        assert_problem(response, 400, "LOGIN_BAD_CREDENTIALS")
    wrong_body, unknown_body = wrong.json(), unknown.json()
    del wrong_body["request_id"], unknown_body["request_id"]
    assert wrong_body == unknown_body


async def test_duplicate_email_is_refused(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    again = await client.post(
        "/auth/register", json={"email": "ADA@example.com", "password": PASSWORD}
    )
    assert_problem(again, 400, "REGISTER_USER_ALREADY_EXISTS")


async def test_short_password_is_refused_with_a_reason(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register", json={"email": "ada@example.com", "password": "7chars!"}
    )
    body = assert_problem(response, 400, "REGISTER_INVALID_PASSWORD")
    assert "at least 8" in body["detail"]


async def test_bad_email_is_a_validation_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/register", json={"email": "nope", "password": PASSWORD})
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert body["errors"][0]["loc"] == ["body", "email"]
    assert PASSWORD not in response.text


async def test_me_without_token_is_401_with_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me")
    assert_problem(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"
