"""The contract between the app and a feature module.

A feature module is a package `modules/<name>/` whose `__init__` exposes `module: Module`.
The app never imports a concrete module: it reads this object (see `app/loader.py`).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel
from pydantic_settings import BaseSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.database import Database
    from app.settings import CoreSettings


class CheckResult(BaseModel):
    """One readiness check. `down` fails readiness (503); `degraded` is reported, still 200."""

    status: Literal["ok", "degraded", "down"]
    detail: Any = None


ReadinessCheck = Callable[["FastAPI"], Awaitable[CheckResult]]


@dataclass(frozen=True)
class RouterSpec:
    """A router to mount. Routes are authenticated unless `public=True` says otherwise."""

    router: APIRouter
    prefix: str = ""
    tags: Sequence[str] = ()
    public: bool = False


@dataclass(frozen=True)
class ModuleContext:
    """What a module's lifespan receives: shared resources, opened by the app."""

    app: FastAPI
    core: CoreSettings
    settings: BaseSettings | None
    database: Database


@dataclass(frozen=True)
class Command:
    """A `python -m app <name>` sub-command contributed by a module."""

    help: str
    # Adds the command's arguments to its argparse sub-parser.
    configure: Callable[[argparse.ArgumentParser], None]
    # Runs it; returns the process exit code.
    run: Callable[[argparse.Namespace, CoreSettings, BaseSettings | None], int]


ModuleLifespan = Callable[[ModuleContext], AbstractAsyncContextManager[None]]


@dataclass(frozen=True)
class Module:
    """Everything the app needs to know about a feature module."""

    name: str
    routers: Sequence[RouterSpec] = ()
    settings_class: type[BaseSettings] | None = None
    lifespan: ModuleLifespan | None = None
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Alembic versions folder of this module (its own branch, labelled with the module name).
    migrations: Path | None = None
    # Lets a module provide an app-level dependency, e.g. the users module provides
    # `app.auth.authenticated` so that every non-public route requires a logged-in user.
    dependency_overrides: Mapping[Callable[..., Any], Callable[..., Any]] = field(
        default_factory=dict
    )
    commands: Mapping[str, Command] = field(default_factory=dict)
