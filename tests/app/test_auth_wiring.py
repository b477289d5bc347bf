"""Authentication is the dependency that is mounted: read it, and it is the one that runs."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import APIRoute

from app.auth import authenticates_itself
from app.loader import load_modules
from app.settings import CoreSettings
from modules.users.auth import SessionTokenStrategy
from tests.helpers import assert_problem, bearer, login, register

ROOT = Path(__file__).resolve().parents[2]
BEARER: list[dict[str, list[str]]] = [{"OAuth2PasswordBearer": []}]


def test_no_dependency_overrides_outside_tests() -> None:
    """FastAPI's testing hook re-analyses the override's dependency tree on every request and
    hides the auth that runs; production code must not use it."""
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("app", "modules", "scripts")
        for path in (ROOT / folder).rglob("*.py")
        if "dependency_overrides" in path.read_text()
    ]
    assert offenders == []


def _private_operations(module_names: list[str]) -> list[tuple[str, str]]:
    """(path, method) of every route a module declared without `public=True`."""
    found: list[tuple[str, str]] = []
    for loaded in load_modules(module_names):
        for spec in loaded.module.routers:
            if spec.public:
                continue
            for route in spec.router.routes:
                if isinstance(route, APIRoute):
                    methods = route.methods or set()
                    found.extend((spec.prefix + route.path, m.lower()) for m in methods)
    return found


async def test_every_private_operation_carries_the_bearer_requirement(
    settings: CoreSettings, client: httpx.AsyncClient
) -> None:
    paths: dict[str, Any] = (await client.get("/openapi.json")).json()["paths"]
    private = _private_operations(settings.modules)
    # The users module's private routes at least (its account and session routes).
    assert ("/users/me", "get") in private
    assert ("/users/me/sessions", "get") in private
    for path, method in private:
        assert paths[path][method].get("security") == BEARER, (path, method)
    # And the public ones do not pretend to need a token.
    assert "security" not in paths["/auth/register"]["post"]
    assert "security" not in paths["/auth/jwt/login"]["post"]


async def test_private_routes_answer_401_problem_without_a_token(
    settings: CoreSettings, client: httpx.AsyncClient
) -> None:
    """Every private operation, whether it is guarded by the router-wide dependency or (its
    router's every route asking for the user itself, `app.auth.authenticates_itself`) by its
    own: 401 before anything else is looked at, even a body or a path parameter."""
    private = _private_operations(settings.modules)
    assert len(private) >= 15, private
    for path, method in private:
        concrete = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        response = await client.request(method, concrete)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer", (method, path)


@pytest.mark.parametrize("path", ["/users/me", "/users/me/sessions"])
async def test_one_authentication_per_request(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """The router's dependency and the route's own user dependency are one cached call: the
    token and its session are checked once per request."""
    await register(client, "once@example.com")
    token = (await login(client, "once@example.com"))["access_token"]
    calls: list[str] = []
    original = SessionTokenStrategy.read_token

    async def counting(self: SessionTokenStrategy, token: str | None, manager: Any) -> Any:
        calls.append("read_token")
        return await original(self, token, manager)

    monkeypatch.setattr(SessionTokenStrategy, "read_token", counting)
    response = await client.get(path, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert calls == ["read_token"]


def test_auth_dependencies_on_the_hot_path_are_async(app: FastAPI) -> None:
    """A plain `def` dependency runs in the thread pool: a hop per dependency per request."""
    provider = app.state.auth_dependency
    pending = [get_dependant(path="", call=provider)]
    sync = []
    while pending:
        dependant = pending.pop()
        call = dependant.call
        if call is not None and inspect.isfunction(call):
            is_async = inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call)
            if not is_async:
                sync.append(call.__qualname__)
        pending.extend(dependant.dependencies)
    assert sync == []


def test_only_a_router_whose_every_route_asks_for_the_user_skips_the_router_wide_guard(
    app: FastAPI,
) -> None:
    """The router-wide `Security(provider)` is left off only where each route would run the
    provider anyway: one route that does not ask keeps the guard on the whole router. (A
    default, not `Annotated`: this module's annotations are strings, and `provider` is local.)"""
    provider = app.state.auth_dependency
    asks = APIRouter()
    open_too = APIRouter()

    @asks.get("/a")
    @open_too.get("/a")
    async def a(user: Any = Depends(provider)) -> None: ...

    @asks.get("/b")
    async def b(user: Any = Depends(provider)) -> None: ...

    @open_too.get("/c")
    async def c() -> None: ...

    assert authenticates_itself(asks, provider)
    assert not authenticates_itself(open_too, provider)
    assert not authenticates_itself(APIRouter(), provider)
