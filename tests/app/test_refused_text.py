"""Lone surrogates and control characters are a 422 problem wherever text comes in (JSON, form,
multipart, query), never a 500 from argon2, PyJWT or PostgreSQL (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LogCapture
from tests.helpers import PASSWORD, assert_problem, bearer, login, register

SURROGATE = "\\ud800"  # as it travels in JSON: a valid escape of an invalid code point


def _json(raw: str) -> dict[str, object]:
    return {"content": raw, "headers": {"Content-Type": "application/json"}}


def _assert_refused(response: httpx.Response, where: str) -> None:
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert any(error["type"] == "string_unacceptable_character" for error in body["errors"]), body
    assert any(".".join(error["loc"]) == where for error in body["errors"]), body


EMAIL = '"email": "ada@example.com"'


@pytest.mark.parametrize(
    ("path", "raw", "where"),
    [
        ("/auth/reset-password", f'{{"token": "{SURROGATE}", "password": "x"}}', "body.token"),
        ("/auth/verify", f'{{"token": "{SURROGATE}"}}', "body.token"),
        ("/auth/verify", '{"token": "abc\\u0000def"}', "body.token"),
        ("/auth/register", f'{{{EMAIL}, "password": "a{SURROGATE}{PASSWORD}"}}', "body.password"),
        ("/auth/forgot-password", '{"email": "ada\\u0000@example.com"}', "body.email"),
        ("/auth/jwt/refresh", f'{{"refresh_token": "{SURROGATE}"}}', "body.refresh_token"),
        ("/auth/register", f'{{{EMAIL}, "password": "{PASSWORD}", "{SURROGATE}": 1}}', "body.?"),
    ],
)
async def test_json_text_with_a_lone_surrogate_or_nul_is_422(
    client: httpx.AsyncClient, logs: LogCapture, path: str, raw: str, where: str
) -> None:
    _assert_refused(await client.post(path, **_json(raw)), where)  # type: ignore[arg-type]
    assert not logs.find(lambda r: r["level"] == "ERROR")


async def test_authenticated_password_change_with_a_surrogate_is_422(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    raw = f'{{"password": "new{SURROGATE}password-long", "current_password": "{PASSWORD}"}}'
    response = await client.patch(
        "/users/me",
        content=raw,
        headers={**bearer(tokens["access_token"]), "Content-Type": "application/json"},
    )
    _assert_refused(response, "body.password")
    await login(client, "ada@example.com")  # the password did not change


@pytest.mark.parametrize("multipart", [False, True])
@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("ada\x00@example.com", PASSWORD),  # PostgreSQL: CharacterNotInRepertoireError
        ("ada\x1b[2J@example.com", PASSWORD),
        ("ada@example.com", PASSWORD + "\x00"),
        ("ada\u0085@example.com", PASSWORD),  # a C1 control
    ],
)
async def test_login_form_with_control_characters_is_422(
    client: httpx.AsyncClient, logs: LogCapture, username: str, password: str, multipart: bool
) -> None:
    await register(client, "ada@example.com")
    fields = {"username": username, "password": password}
    if multipart:
        files = {name: (None, value) for name, value in fields.items()}
        response = await client.post("/auth/jwt/login", files=files)
    else:
        response = await client.post("/auth/jwt/login", data=fields)
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    assert body["errors"][0]["type"] == "string_unacceptable_character"
    assert "\x00" not in response.text and "\x1b" not in response.text
    assert not logs.find(lambda r: r["level"] == "ERROR")


async def test_query_string_with_nul_is_422(client: httpx.AsyncClient) -> None:
    _assert_refused(await client.get("/health/live?probe=%00"), "query.probe")


async def test_ordinary_text_still_passes(client: httpx.AsyncClient) -> None:
    # A surrogate *pair* is one character (an emoji); tabs and new lines are ordinary text.
    raw = '{"email": "emoji@example.com", "password": "pass \\ud83d\\ude00\\tword\\nlong enough"}'
    response = await client.post("/auth/register", **_json(raw))  # type: ignore[arg-type]
    assert response.status_code == 201, response.text
    await login(client, "emoji@example.com", "pass \U0001f600\tword\nlong enough")
