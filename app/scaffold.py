"""`python -m app new-module NAME`: a module package laid out like the users module."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FILES = {
    "__init__.py": '''"""{title}: what this module does.

Public surface (what other modules may import): nothing yet.
"""

from app.module import Module, RouterSpec
from modules.{name}.router import router
from modules.{name}.settings import {cls}Settings

module = Module(
    name="{name}",
    routers=[RouterSpec(router, prefix="/{name}", tags=["{name}"])],
    settings_class={cls}Settings,
)

__all__ = ["module"]
''',
    "settings.py": '''"""Settings of the {name} module (environment variables, also read from `.env`)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class {cls}Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")
''',
    "schemas.py": '''"""Request and response bodies of the {name} module."""

from pydantic import BaseModel


class Ping(BaseModel):
    module: str = "{name}"
''',
    "service.py": '''"""Business logic of the {name} module: routes call this, this calls the repository."""

from modules.{name}.schemas import Ping


async def ping() -> Ping:
    return Ping()
''',
    "router.py": '''"""Routes of the {name} module. Authenticated unless its RouterSpec says public=True."""

from fastapi import APIRouter

from modules.{name} import service
from modules.{name}.schemas import Ping

router = APIRouter()


@router.get("/ping", summary="Answer if the {name} module is mounted")
async def ping() -> Ping:
    return await service.ping()
''',
}


def create_module(name: str, root: Path = ROOT) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"module names are lower_snake_case, not {name!r}")
    target = root / "modules" / name
    if target.exists():
        raise ValueError(f"{target} already exists")
    target.mkdir(parents=True)
    cls = "".join(part.capitalize() for part in name.split("_"))
    for filename, template in _FILES.items():
        text = template.format(name=name, cls=cls, title=name.replace("_", " ").capitalize())
        (target / filename).write_text(text)
    return target
