"""The module loader: modules ordered by what they require, one clear line for a bad list,
routes private by default."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import modules
import modules.users
from app.factory import create_app
from app.loader import ModuleLoadError, load_modules
from app.settings import CoreSettings
from tests.helpers import assert_problem, bearer, login, register


@pytest.fixture
def extra_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A second folder searched for `modules.<name>` packages, so tests can add modules."""
    folder = tmp_path / "extra"
    folder.mkdir()
    before = set(sys.modules)
    monkeypatch.setattr(modules, "__path__", [*modules.__path__, str(folder)])
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith("modules."):
            del sys.modules[name]


def _fake_module(
    folder: Path, name: str, requires: tuple[str, ...] = (), auth: bool = False
) -> None:
    """A minimal module package: a Module with settings, requirements and maybe an auth slot."""
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text(
        "from pydantic_settings import BaseSettings\n"
        "from fastapi.security import HTTPBearer\n"
        "from fastapi import Depends\n"
        "from app.module import Module\n"
        "class Settings(BaseSettings):\n"
        "    pass\n"
        "scheme = HTTPBearer()\n"
        "async def me(token=Depends(scheme)):\n"
        "    return token\n"
        f"module = Module(name={name!r}, settings_class=Settings, requires={requires!r},"
        f" auth={'me' if auth else 'None'})\n"
    )


def test_unknown_module_is_one_line_naming_it() -> None:
    with pytest.raises(ModuleLoadError) as caught:
        load_modules(["users", "nosuchmodule"])
    assert "nosuchmodule" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_broken_module_is_named(extra_modules: Path) -> None:
    (extra_modules / "broken").mkdir()
    (extra_modules / "broken" / "__init__.py").write_text("import not_a_real_dependency\n")
    with pytest.raises(ModuleLoadError, match=r"module 'broken' failed to import"):
        load_modules(["broken"])


def test_package_without_module_object_is_refused(extra_modules: Path) -> None:
    (extra_modules / "nomodule").mkdir()
    (extra_modules / "nomodule" / "__init__.py").write_text("x = 1\n")
    with pytest.raises(ModuleLoadError, match="must define `module: Module`"):
        load_modules(["nomodule"])


@pytest.mark.parametrize("listed", [["integrations", "users"], ["users", "integrations"]])
def test_a_module_loads_after_what_it_requires(listed: list[str]) -> None:
    loaded = load_modules(listed)
    assert [item.module.name for item in loaded] == ["integrations", "users"]


def test_independent_modules_keep_the_listed_order(extra_modules: Path) -> None:
    for name in ("alpha", "beta"):
        _fake_module(extra_modules, name)
    _fake_module(extra_modules, "gamma", requires=("beta",))
    names = [m.module.name for m in load_modules(["gamma", "alpha", "beta"])]
    assert names == ["alpha", "beta", "gamma"]
    names = [m.module.name for m in load_modules(["beta", "gamma", "alpha"])]
    assert names == ["beta", "gamma", "alpha"]


def test_a_missing_requirement_is_one_line_naming_both() -> None:
    with pytest.raises(ModuleLoadError) as caught:
        load_modules(["users"])
    message = str(caught.value)
    assert "'users'" in message
    assert "'integrations'" in message
    assert "\n" not in message


def test_a_cycle_is_refused_naming_it(extra_modules: Path) -> None:
    _fake_module(extra_modules, "alpha", requires=("beta",))
    _fake_module(extra_modules, "beta", requires=("alpha",))
    with pytest.raises(
        ModuleLoadError, match=r"cycle: (alpha -> beta -> alpha|beta -> alpha -> beta)"
    ):
        load_modules(["alpha", "beta"])


def test_two_authenticating_modules_are_refused(extra_modules: Path) -> None:
    _fake_module(extra_modules, "alpha", auth=True)
    with pytest.raises(ModuleLoadError, match="'users' and 'alpha' both provide authentication"):
        load_modules(["integrations", "users", "alpha"])


@pytest.mark.parametrize(
    "command",
    [["-m", "app", "serve", "--no-migrate"], ["-m", "uvicorn", "app.main:app", "--port", "0"]],
)
def test_modules_users_alone_refuses_to_start(tmp_path: Path, command: list[str]) -> None:
    """Over a real process, as an operator runs it: non-zero, one line naming integrations."""
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, *command],
        cwd=tmp_path,  # no .env of the developer's
        env={
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(root),
            "MODULES": "users",
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "'users'" in lines[0]
    assert "'integrations'" in lines[0]
    assert "Traceback" not in result.stderr


def _private_module(folder: Path, name: str) -> None:
    """A module with one private route and no requirement (so it loads without users)."""
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text(
        "from fastapi import APIRouter\n"
        "from pydantic_settings import BaseSettings\n"
        "from app.module import Module, RouterSpec\n"
        "class Settings(BaseSettings):\n"
        "    pass\n"
        "router = APIRouter()\n"
        "@router.get('/ping')\n"
        "async def ping() -> dict[str, str]:\n"
        "    return {'module': " + repr(name) + "}\n"
        f"module = Module(name={name!r}, settings_class=Settings,"
        f" routers=[RouterSpec(router, prefix='/{name}')])\n"
    )


async def test_a_private_route_of_any_module_sits_behind_the_users_auth(
    extra_modules: Path, settings: CoreSettings
) -> None:
    _private_module(extra_modules, "demo")
    app = create_app(settings.model_copy(update={"modules": [*settings.modules, "demo"]}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            operation = (await client.get("/openapi.json")).json()["paths"]["/demo/ping"]["get"]
            assert operation["security"] == [{"OAuth2PasswordBearer": []}]
            anonymous = await client.get("/demo/ping")
            assert_problem(anonymous, 401)
            assert anonymous.headers["www-authenticate"] == "Bearer"
            await register(client, "ada@example.com")
            tokens = await login(client, "ada@example.com")
            signed_in = await client.get("/demo/ping", headers=bearer(tokens["access_token"]))
            assert signed_in.status_code == 200
            assert signed_in.json() == {"module": "demo"}


async def test_without_an_auth_module_private_routes_are_closed(
    extra_modules: Path, settings: CoreSettings
) -> None:
    _private_module(extra_modules, "demo")
    app = create_app(settings.model_copy(update={"modules": ["demo"]}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            operation = (await client.get("/openapi.json")).json()["paths"]["/demo/ping"]["get"]
            assert operation["security"] == [{"HTTPBearer": []}]
            response = await client.get("/demo/ping", headers=bearer("anything"))
            assert_problem(response, 401)


def _module_with_permissions(
    folder: Path, name: str, declares: dict[str, str], requires_permission: str | None
) -> None:
    """A module declaring `declares`, with a route guarded by a check of `requires_permission`
    (any dependency whose callable carries `required_permission`, as RequirePermission's do)."""
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text(
        "from fastapi import APIRouter, Depends\n"
        "from pydantic_settings import BaseSettings\n"
        "from app.module import Module, RouterSpec\n"
        "class Settings(BaseSettings):\n"
        "    pass\n"
        "class Check:\n"
        "    def __init__(self, permission):\n"
        "        self.required_permission = permission\n"
        "    async def __call__(self):\n"
        "        return None\n"
        "router = APIRouter()\n"
        f"guard = [Depends(Check({requires_permission!r}))] if {requires_permission!r} else []\n"
        "@router.get('/things/{thing_id}', dependencies=guard)\n"
        "async def read(thing_id: str):\n"
        "    return thing_id\n"
        f"module = Module(name={name!r}, settings_class=Settings, permissions={declares!r},"
        f" routers=[RouterSpec(router, prefix='/{name}')])\n"
    )


def test_a_route_requiring_an_undeclared_permission_is_refused(extra_modules: Path) -> None:
    _module_with_permissions(extra_modules, "notes", {"notes:read": "Read"}, "notes:wirte")
    with pytest.raises(ModuleLoadError) as caught:
        load_modules(["integrations", "users", "notes"])
    assert str(caught.value) == (
        "module 'notes': GET /notes/things/{thing_id} requires permission 'notes:wirte', "
        "which no loaded module declares"
    )


def test_declared_permissions_load_and_reach_the_app(
    extra_modules: Path, settings: CoreSettings
) -> None:
    # Its own permission, and another loaded module's (users:read) both count as declared.
    _module_with_permissions(extra_modules, "notes", {"notes:read": "Read notes"}, "users:read")
    settings = settings.model_copy(update={"modules": ["integrations", "users", "notes"]})
    app = create_app(settings)
    assert app.state.permissions["notes:read"] == "Read notes"
    assert {"users:read", "users:write", "roles:read", "roles:write"} <= set(app.state.permissions)


def test_the_permission_of_a_module_not_loaded_is_undeclared(extra_modules: Path) -> None:
    _module_with_permissions(extra_modules, "notes", {}, "users:read")
    with pytest.raises(ModuleLoadError, match="requires permission 'users:read'"):
        load_modules(["notes"])


@pytest.mark.parametrize("bad", ["notes", "Notes:read", "notes:", "notes:read:all", "notes read"])
def test_a_malformed_permission_is_refused(extra_modules: Path, bad: str) -> None:
    _module_with_permissions(extra_modules, "notes", {bad: "?"}, None)
    with pytest.raises(ModuleLoadError) as caught:
        load_modules(["notes"])
    assert str(caught.value) == (
        f"module 'notes': permission {bad!r} is not '<module>:<action>' (lower_snake_case)"
    )


def test_a_permission_declared_twice_is_refused(extra_modules: Path) -> None:
    _module_with_permissions(extra_modules, "notes", {"users:read": "mine too"}, None)
    with pytest.raises(
        ModuleLoadError, match="permission 'users:read' is declared by modules 'users' and 'notes'"
    ):
        load_modules(["integrations", "users", "notes"])
