"""Every error a client can see is problem+json, with no internals in it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException

from app.errors import ProblemError
from app.settings import CoreSettings
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, assert_problem


@pytest.fixture
def app(app: FastAPI) -> FastAPI:
    """The app with a few routes that fail on purpose, declared public."""

    @app.get("/test/boom")
    async def boom() -> None:
        raise RuntimeError("SELECT secret FROM users -- internal detail")

    @app.get("/test/teapot")
    async def teapot() -> None:
        raise ProblemError("No coffee here.", status_code=418, code="TEAPOT")

    @app.get("/test/http")
    async def http() -> None:
        raise HTTPException(status_code=409, detail="Already done.")

    return app


async def test_unhandled_exception_is_a_generic_500(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    response = await client.get("/test/boom", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500, "INTERNAL_ERROR")
    assert body["detail"] == "An unexpected error occurred."
    assert "SELECT" not in response.text and "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    # The traceback is in the log, with the request id.
    errors = logs.find(lambda r: r["level"] == "ERROR" and r.get("request_id") == "boom-1")
    assert errors and "RuntimeError" in errors[0]["exception"]


async def test_problem_error_and_http_exception(client: httpx.AsyncClient) -> None:
    teapot = assert_problem(await client.get("/test/teapot"), 418, "TEAPOT")
    assert teapot["detail"] == "No coffee here."
    assert teapot["instance"] == "/test/teapot"
    conflict = assert_problem(await client.get("/test/http"), 409, "CONFLICT")
    assert conflict["detail"] == "Already done."


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/no/such/route"), 404, "NOT_FOUND")
    assert_problem(await client.delete("/health/live"), 405, "METHOD_NOT_ALLOWED")


async def test_validation_error_lists_errors_without_echoing_input(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/auth/register", json={"email": "not-an-email", "password": 12345678}
    )
    body = assert_problem(response, 422, "VALIDATION_ERROR")
    locations = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "email") in locations
    assert "not-an-email" not in response.text


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/register",
        content=b'{"email": "a@example.com", "password": "' + b"x" * 70_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_chunked_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    # No Content-Length: the limit is enforced while the body is read.
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 5_000

    response = await client.post(
        "/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_unreachable_database_is_503(tmp_path) -> None:
    from app.factory import create_app

    settings = CoreSettings(
        environment="test",
        # Nothing listens on port 9: connecting fails at once.
        database_url="postgresql+asyncpg://postgres@127.0.0.1:9/test",
        secret_key="k" * 40,
        data_dir=tmp_path,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            register = await client.post(
                "/auth/register", json={"email": "a@example.com", "password": PASSWORD}
            )
            assert_problem(register, 503, "SERVICE_UNAVAILABLE")
            assert "127.0.0.1" not in register.text and "asyncpg" not in register.text
            ready = await client.get("/health/ready")
            body = assert_problem(ready, 503, "SERVICE_UNAVAILABLE")
            assert body["checks"]["database"]["status"] == "down"
            assert (await client.get("/health/live")).status_code == 200
