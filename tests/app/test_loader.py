"""The module loader: modules in order, one clear line for a bad one, routes private by default."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import modules
from app.factory import create_app
from app.loader import ModuleLoadError, load_modules
from app.scaffold import create_module
from app.settings import CoreSettings
from tests.helpers import bearer, login, register


@pytest.fixture
def extra_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A second folder searched for `modules.<name>` packages, so tests can add modules."""
    folder = tmp_path / "extra"
    folder.mkdir()
    monkeypatch.setattr(modules, "__path__", [*modules.__path__, str(folder)])
    yield folder
    for name in list(sys.modules):
        if name.startswith(("modules.demo", "modules.broken", "modules.nomodule")):
            del sys.modules[name]


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


def test_modules_load_in_order() -> None:
    loaded = load_modules(["integrations", "users"])
    assert [item.module.name for item in loaded] == ["integrations", "users"]


async def test_scaffolded_module_mounts_and_is_private_by_default(
    extra_modules: Path, settings: CoreSettings
) -> None:
    create_module("demo", root=extra_modules.parent / "root")  # layout check below
    created = extra_modules.parent / "root" / "modules" / "demo"
    assert {p.name for p in created.iterdir()} >= {
        "__init__.py",
        "router.py",
        "service.py",
        "schemas.py",
        "settings.py",
    }
    created.rename(extra_modules / "demo")

    app = create_app(settings.model_copy(update={"modules": [*settings.modules, "demo"]}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            anonymous = await client.get("/demo/ping")
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"] == "Bearer"
            await register(client, "ada@example.com")
            tokens = await login(client, "ada@example.com")
            signed_in = await client.get("/demo/ping", headers=bearer(tokens["access_token"]))
            assert signed_in.status_code == 200
            assert signed_in.json() == {"module": "demo"}


async def test_without_an_auth_module_private_routes_are_closed(
    extra_modules: Path, settings: CoreSettings
) -> None:
    create_module("demo", root=extra_modules.parent / "root")
    (extra_modules.parent / "root" / "modules" / "demo").rename(extra_modules / "demo")
    app = create_app(settings.model_copy(update={"modules": ["demo"]}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/demo/ping")).status_code == 401
