"""Breached passwords are refused on register and reset (Have I Been Pwned range API on
127.0.0.1); when the API is down or its circuit open, the check is skipped and logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations.pwned import sha1_prefix_suffix
from modules.integrations.settings import IntegrationsSettings
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, assert_problem, login, register
from tests.upstreams import FakeHttpUpstream, Reply, closed_port_url, eventually

BREACHED = PASSWORD
SAFE = "a quiet meadow under winter stars"


def range_answer(path: str) -> Reply:
    """The range API: padding entries (count 0) around what it knows under the prefix."""
    breached_prefix, breached_suffix = sha1_prefix_suffix(BREACHED)
    safe_prefix, safe_suffix = sha1_prefix_suffix(SAFE)
    lines = ["0018A45C4D1DEF81644B54AB7F969B88D65:0", "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2"]
    if path == f"/range/{breached_prefix}":
        lines.append(f"{breached_suffix}:42")
    if path == f"/range/{safe_prefix}":
        lines.append(f"{safe_suffix}:0")  # a padding entry for the very suffix: not a breach
    return Reply(200, "\r\n".join(lines))


@pytest.fixture
async def pwned_api() -> AsyncIterator[FakeHttpUpstream]:
    server = FakeHttpUpstream(route=range_answer)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def app(settings: CoreSettings, pwned_api: FakeHttpUpstream) -> FastAPI:
    integrations = IntegrationsSettings(pwned_passwords_url=pwned_api.url)
    return create_app(settings, module_settings={"integrations": integrations})


async def test_a_breached_password_is_refused_on_register(
    client: httpx.AsyncClient, pwned_api: FakeHttpUpstream
) -> None:
    response = await client.post(
        "/auth/register", json={"email": "ada@example.com", "password": BREACHED}
    )
    body = assert_problem(response, 400, "REGISTER_INVALID_PASSWORD")
    assert "known data breaches" in body["detail"]
    # k-anonymity: one request, carrying only the first 5 hex characters of the SHA-1.
    prefix, suffix = sha1_prefix_suffix(BREACHED)
    [request] = pwned_api.requests
    assert request.path == f"/range/{prefix}"
    assert request.headers["add-padding"] == "true"
    assert suffix not in str(request) and BREACHED not in str(request)


async def test_a_password_not_in_the_answer_registers(client: httpx.AsyncClient) -> None:
    await register(client, "ada@example.com", SAFE)
    await login(client, "ada@example.com", SAFE)


async def test_a_breached_password_is_refused_on_reset(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await register(client, "ada@example.com", SAFE)
    response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
    assert response.status_code == 202
    outbox = app.state.integrations.mail.mailer.outbox
    await eventually(lambda: len(outbox) == 1)
    link = next(line for line in outbox[0].body.splitlines() if "token=" in line)
    token = parse_qs(urlsplit(link).query)["token"][0]

    refused = await client.post("/auth/reset-password", json={"token": token, "password": BREACHED})
    body = assert_problem(refused, 400, "RESET_PASSWORD_INVALID_PASSWORD")
    assert "known data breaches" in body["detail"]
    await login(client, "ada@example.com", SAFE)  # the old password still works


class TestApiDown:
    @pytest.fixture
    def app(self, settings: CoreSettings) -> FastAPI:
        integrations = IntegrationsSettings(
            pwned_passwords_url=closed_port_url(), breaker_threshold=1
        )
        return create_app(settings, module_settings={"integrations": integrations})

    async def test_registration_goes_on_and_the_skip_is_logged(
        self, client: httpx.AsyncClient, logs: LogCapture
    ) -> None:
        await register(client, "ada@example.com", BREACHED)
        skipped = logs.find(lambda r: r["message"].startswith("breached-password check skipped"))
        assert len(skipped) == 1
        assert skipped[0]["level"] == "WARNING"
        assert skipped[0]["circuit"] == "pwned-passwords"
        assert "UpstreamError" in skipped[0]["message"]

    async def test_readiness_shows_the_open_circuit_as_degraded(
        self, client: httpx.AsyncClient, logs: LogCapture
    ) -> None:
        ready = await client.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["status"] == "ok"

        await register(client, "ada@example.com", BREACHED)  # one failure: threshold 1
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        body = ready.json()
        assert body["status"] == "degraded"
        circuits = body["checks"]["integrations.circuits"]
        assert circuits["status"] == "degraded"
        pwned = circuits["detail"]["pwned-passwords"]
        assert pwned == {"state": "open"}  # no failure count, no time: see issue 8
        assert circuits["detail"]["mail"]["state"] == "closed"

        # While open: the check fails fast, registration still answers 201.
        await register(client, "bob@example.com", BREACHED)
        skipped = logs.find(lambda r: r["message"].startswith("breached-password check skipped"))
        assert "CircuitOpenError" in skipped[-1]["message"]
