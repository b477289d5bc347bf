"""Secrets never reach a log line; CR/LF in input cannot forge one."""

from __future__ import annotations

import httpx
import pytest

from app.logging import REDACTED, redact
from tests.conftest import TEST_SECRET, LogCapture
from tests.helpers import PASSWORD, bearer, login, register

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        (f"token {JWT} seen", JWT),
        ("password=hunter22hunter&username=a", "hunter22hunter"),
        ('{"password": "s3cret pass"}', "s3cret pass"),
        ("{'refresh_token': 'r-123456'}", "r-123456"),
        ("reset link /auth/reset-password?token=abcdef123", "abcdef123"),
        ("SECRET_KEY=supersecretvalue", "supersecretvalue"),
    ],
)
def test_redact_removes_secrets(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_redact_escapes_line_breaks() -> None:
    assert redact("user\r\nINFO forged line") == "user\\r\\nINFO forged line"


async def test_request_logs_carry_no_password_or_token(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    await client.get("/users/me", headers=bearer(tokens["access_token"]))
    await client.post(
        "/auth/jwt/login", data={"username": "ada@example.com", "password": "wrong password!"}
    )
    text = logs.text
    assert logs.lines, "the requests wrote no log lines"
    for secret in (PASSWORD, "wrong password!", tokens["access_token"], TEST_SECRET):
        assert secret not in text


async def test_crlf_in_a_path_cannot_forge_a_log_line(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    await client.get("/nope%0D%0AINFO%20forged")
    access = logs.find(lambda r: r.get("path", "").startswith("/nope"))
    assert access
    for record in access:
        assert "\n" not in record["message"] and "\r" not in record["message"]
        assert "\n" not in record["path"]


async def test_request_id_is_echoed_and_on_every_line(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.post(
        "/auth/register",
        json={"email": "ada@example.com", "password": PASSWORD},
        headers={"X-Request-ID": "abc123"},
    )
    assert response.headers["x-request-id"] == "abc123"
    lines = logs.find(lambda r: r.get("request_id") == "abc123")
    messages = [r["message"] for r in lines]
    assert any("user registered" in m for m in messages)
    access = [r for r in lines if r.get("path") == "/auth/register"]
    assert len(access) == 1
    assert access[0]["status"] == 201
    assert access[0]["method"] == "POST"
    assert isinstance(access[0]["duration_ms"], float)


async def test_insane_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live", headers={"X-Request-ID": "a b\tc" + "x" * 200})
    assert response.headers["x-request-id"] != "a b\tc" + "x" * 200
    assert len(response.headers["x-request-id"]) == 32


async def test_access_line_names_the_user(client: httpx.AsyncClient, logs: LogCapture) -> None:
    user = await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    await client.get("/users/me", headers=bearer(tokens["access_token"]))
    access = logs.find(lambda r: r.get("path") == "/users/me")
    assert access[-1]["user_id"] == user["id"]
