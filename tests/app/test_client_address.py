"""X-Forwarded-For / Forwarded are believed only from TRUSTED_PROXIES (the address a session
records and the rate limit counts by)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import bearer, register


async def _recorded_address(app: FastAPI, peer: str, headers: dict[str, str]) -> str:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=(peer, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await register(client, "ada@example.com")
            response = await client.post(
                "/auth/jwt/login",
                data={"username": "ada@example.com", "password": "correct horse battery staple"},
                headers=headers,
            )
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            sessions = await client.get("/users/me/sessions", headers=bearer(token))
            address: str = sessions.json()[0]["client_address"]
            return address


@pytest.mark.parametrize(
    ("trusted", "peer", "headers", "expected"),
    [
        # No trusted proxy: the header is the client's word, not believed.
        ([], "10.0.0.5", {"X-Forwarded-For": "203.0.113.7"}, "10.0.0.5"),
        # From a trusted proxy: the nearest address that is not a trusted proxy.
        (
            ["10.0.0.0/8"],
            "10.0.0.5",
            {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"},
            "203.0.113.7",
        ),
        (["10.0.0.0/8"], "10.0.0.5", {"X-Forwarded-For": "203.0.113.7, 10.0.0.9"}, "203.0.113.7"),
        (["10.0.0.5"], "10.0.0.5", {"Forwarded": 'for="203.0.113.8";proto=https'}, "203.0.113.8"),
        # A peer that is not trusted cannot pass one off.
        (["10.0.0.0/8"], "192.0.2.1", {"X-Forwarded-For": "203.0.113.7"}, "192.0.2.1"),
    ],
)
async def test_client_address(
    settings: CoreSettings,
    trusted: list[str],
    peer: str,
    headers: dict[str, str],
    expected: str,
) -> None:
    app = create_app(settings.model_copy(update={"trusted_proxies": trusted}))
    assert await _recorded_address(app, peer, headers) == expected


async def test_forged_addresses_cannot_dodge_the_address_limit(settings: CoreSettings) -> None:
    """Without trusted proxies, a client rotating X-Forwarded-For is still one address."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.50", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            statuses = []
            for n in range(21):  # LOGIN_MAX_FAILURES (5) x 4 per address, each a new username
                response = await client.post(
                    "/auth/jwt/login",
                    data={"username": f"user{n}@example.com", "password": "wrong password"},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"},
                )
                statuses.append(response.status_code)
            assert statuses[:20] == [400] * 20
            assert statuses[20] == 429
