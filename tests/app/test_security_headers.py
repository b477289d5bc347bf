"""Security headers on every response, no-store on everything personal, HSTS in production
only, and no trailing-slash redirect built from the Host header."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import PASSWORD, assert_problem, bearer, login, register

STRONG_KEY = "Zq8vN3xK1pLw7RtY4uMb9sHd2cFg6jEa0oTi5nXy-Vr_K8wQ"


def _assert_security_headers(response: httpx.Response) -> None:
    where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") in (
        "no-referrer",
        "strict-origin-when-cross-origin",
    ), where
    frame_denied = response.headers.get("x-frame-options") == "DENY"
    csp = response.headers.get("content-security-policy", "")
    assert frame_denied or "frame-ancestors 'none'" in csp, where


async def test_every_kind_of_response_carries_the_security_headers(
    client: httpx.AsyncClient,
) -> None:
    await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    responses = [
        await client.get("/health/live"),
        await client.get("/health/ready"),
        await client.get("/nope"),  # 404 problem
        await client.delete("/health/live"),  # 405 problem
        await client.post("/auth/register", json={"email": "x"}),  # 422 problem
        await client.get("/users/me"),  # 401 problem
        await client.get("/users/me", headers=bearer(tokens["access_token"])),
        await client.post(
            "/auth/jwt/login", data={"username": "ada@example.com", "password": PASSWORD}
        ),
        await client.get("/openapi.json"),
        await client.get("/docs"),
        await client.get("/redoc"),
        await client.get("/docs/oauth2-redirect"),
        await client.get("/docs-assets/swagger-ui.css"),
    ]
    for response in responses:
        _assert_security_headers(response)
        assert "strict-transport-security" not in response.headers  # not outside production


async def test_docs_pages_keep_their_own_policy(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        csp = (await client.get(page)).headers["content-security-policy"]
        assert "script-src 'self' 'unsafe-inline'" in csp, page
        assert "frame-ancestors 'none'" in csp, page
    # The assets are the same for everyone: cacheable.
    asset = await client.get("/docs-assets/swagger-ui.css")
    assert asset.headers["cache-control"].startswith("public")


async def test_personal_answers_are_never_stored(client: httpx.AsyncClient) -> None:
    ada = await register(client, "ada@example.com")
    tokens = await login(client, "ada@example.com")
    auth = bearer(tokens["access_token"])
    personal = [
        await client.get("/users/me", headers=auth),
        await client.patch("/users/me", headers=auth, json={}),
        await client.get("/users/me/sessions", headers=auth),
        await client.get(f"/users/{ada['id']}", headers=auth),  # 403 for a non-superuser
        await client.post("/auth/jwt/refresh", json={"refresh_token": tokens["refresh_token"]}),
    ]
    for response in personal:
        where = f"{response.request.method} {response.request.url.path} ({response.status_code})"
        assert response.status_code < 500, where
        assert "no-store" in response.headers.get("cache-control", ""), where


async def test_hsts_in_production_only(settings: CoreSettings) -> None:
    production = CoreSettings(
        environment="production",
        database_url=settings.database_url,
        secret_key=STRONG_KEY,
        public_url="https://gatehouse.example.com",
        modules=[],
        data_dir=settings.data_dir,
        log_format="json",
    )
    app: FastAPI = create_app(production)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            for path in ("/health/live", "/nope"):
                response = await c.get(path)
                _assert_security_headers(response)
                hsts = response.headers.get("strict-transport-security", "")
                assert hsts.startswith("max-age=") and int(hsts[8:].split(";")[0]) >= 15552000


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/auth/jwt/login/"), ("POST", "/auth/register/"), ("GET", "/users/me/")],
)
async def test_a_trailing_slash_is_a_404_never_a_redirect(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(
        method,
        path,
        data={"username": "ada@example.com", "password": PASSWORD},
        headers={"Host": "attacker.example"},
    )
    assert "location" not in response.headers
    assert_problem(response, 404, "NOT_FOUND")
    _assert_security_headers(response)
