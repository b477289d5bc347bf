"""Password policy: 8-128 characters, no composition rules, zxcvbn refuses guessable ones,
checked exactly as typed, on register, reset and change alike."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import PASSWORD, assert_problem, bearer, login, register
from tests.mail import token_in, wait_for_mail

STRONG_8 = "T7r#q2Lp"


async def _register(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/auth/register", json={"email": email, "password": password})


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password", "common password"),
        ("12345678", "common password"),
        ("abcdefgh", "Sequences"),
    ],
)
async def test_common_passwords_are_refused_with_zxcvbn_feedback(
    client: httpx.AsyncClient, password: str, reason: str
) -> None:
    response = await _register(client, "ada@example.com", password)
    body = assert_problem(response, 400, "REGISTER_INVALID_PASSWORD")
    assert "too easy to guess" in body["detail"]
    assert reason in body["detail"]


async def test_a_password_equal_to_the_email_local_part_is_refused(
    client: httpx.AsyncClient,
) -> None:
    response = await _register(client, "margaret.hamilton@example.com", "margaret.hamilton")
    assert_problem(response, 400, "REGISTER_INVALID_PASSWORD")


async def test_a_password_built_from_the_email_is_refused(client: httpx.AsyncClient) -> None:
    # zxcvbn scores "zorblaxquintrell" 4 on its own; the email's words make it guessable.
    refused = await _register(client, "zorblax.quintrell@example.com", "zorblaxquintrell")
    body = assert_problem(refused, 400, "REGISTER_INVALID_PASSWORD")
    assert "too easy to guess" in body["detail"]
    await register(client, "someone.else@example.com", "zorblaxquintrell")


@pytest.mark.parametrize(
    "password",
    [
        "the quiet river runs under seven old bridges",  # lower-case passphrase
        "mot de passe avec des espaces",  # spaces
        "пароль для тестов мой",  # Unicode
        "パスワードは長い文字列です",  # Unicode, no spaces
        STRONG_8,  # exactly 8
        ("a long passphrase of sixty four characters, all of it kept here!")[:64],  # 64
    ],
)
async def test_no_composition_rules_passphrases_spaces_unicode_and_the_bounds_pass(
    client: httpx.AsyncClient, password: str
) -> None:
    await register(client, "ada@example.com", password)
    await login(client, "ada@example.com", password)


async def test_the_length_bounds_are_8_and_128(client: httpx.AsyncClient) -> None:
    assert len(STRONG_8[:7]) == 7
    short = await _register(client, "ada@example.com", STRONG_8[:7])
    assert "at least 8" in assert_problem(short, 400, "REGISTER_INVALID_PASSWORD")["detail"]

    sixty_four = ("a long passphrase of sixty four characters, all of it kept here!")[:64]
    assert len(sixty_four) == 64
    await register(client, "sixty.four@example.com", sixty_four)

    for length in (129, 60_000):
        over_long = ("x9 Q" * length)[:length]
        long = await _register(client, "ada@example.com", over_long)
        body = assert_problem(long, 400, "REGISTER_INVALID_PASSWORD")
        assert "at most 128" in body["detail"]


async def test_the_password_is_checked_exactly_as_typed(client: httpx.AsyncClient) -> None:
    typed = " spaced passphrase, kept as typed "
    await register(client, "ada@example.com", typed)
    for variant in (typed.strip(), typed.upper(), typed[:-1], typed + " "):
        response = await client.post(
            "/auth/jwt/login", data={"username": "ada@example.com", "password": variant}
        )
        assert_problem(response, 400, "LOGIN_BAD_CREDENTIALS")
    await login(client, "ada@example.com", typed)


async def test_reset_password_applies_the_policy(client: httpx.AsyncClient, app: FastAPI) -> None:
    await register(client, "ada@example.com")
    asked = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    assert asked.status_code == 202
    token = token_in(await wait_for_mail(app, "ada@example.com", "Reset"))

    weak = await client.post("/auth/reset-password", json={"token": token, "password": "password"})
    body = assert_problem(weak, 400, "RESET_PASSWORD_INVALID_PASSWORD")
    assert "too easy to guess" in body["detail"]

    strong = await client.post(
        "/auth/reset-password", json={"token": token, "password": "a brand new passphrase"}
    )
    assert strong.status_code == 200, strong.text
    await login(client, "ada@example.com", "a brand new passphrase")


async def test_changing_the_password_applies_the_policy(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    for weak, reason in (("12345678", "too easy to guess"), ("short", "at least 8")):
        response = await client.patch(
            "/users/me",
            json={"password": weak, "current_password": PASSWORD},
            headers=bearer(tokens["access_token"]),
        )
        body = assert_problem(response, 400, "UPDATE_USER_INVALID_PASSWORD")
        assert reason in body["detail"]
    await login(client, "ada@example.com", PASSWORD)  # unchanged
