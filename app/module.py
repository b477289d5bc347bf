"""The contract between the app and a feature module.

A feature module is a package `modules/<name>/` whose `__init__` exposes `module: Module[...]`.
The app never imports a concrete module: it reads this object (see `app/loader.py`).

`Module` is generic in the module's settings class: its lifespan gets a
`ModuleContext[ItsSettings]` and its commands get `ItsSettings`, already validated by the loader,
so a module never downcasts `BaseSettings`.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from fastapi import APIRouter
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from app.events import EventHub, Subscription

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncSession

    from app.database import Database
    from app.settings import CoreSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class CheckResult(BaseModel):
    """One readiness check. `down` fails readiness (503); `degraded` is reported, still 200."""

    status: Literal["ok", "degraded", "down"]
    detail: Any = None


ReadinessCheck = Callable[["FastAPI"], Awaitable[CheckResult]]

# Deletes at most `limit` rows nothing needs any more, as of `now`; returns how many it deleted.
# The app (`app/purge.py`) calls it in a transaction of its own, again until a batch comes back
# short, on a schedule and from `python -m app purge`: (session, module settings, now, limit).
PurgeBatch = Callable[["AsyncSession", SettingsT, datetime, int], Awaitable[int]]


@dataclass(frozen=True)
class RouterSpec:
    """A router to mount. Routes are authenticated unless `public=True` says otherwise."""

    router: APIRouter
    prefix: str = ""
    tags: Sequence[str] = ()
    public: bool = False


@dataclass(frozen=True)
class ModuleContext(Generic[SettingsT]):
    """What a module's lifespan receives: shared resources, opened by the app."""

    app: FastAPI
    core: CoreSettings
    settings: SettingsT
    database: Database
    events: EventHub


@dataclass(frozen=True)
class Command(Generic[SettingsT]):
    """A `python -m app <name>` sub-command contributed by a module."""

    help: str
    # Adds the command's arguments to its argparse sub-parser.
    configure: Callable[[argparse.ArgumentParser], None]
    # Runs it; returns the process exit code.
    run: Callable[[argparse.Namespace, CoreSettings, SettingsT], int]


@dataclass(frozen=True)
class Module(Generic[SettingsT]):
    """Everything the app needs to know about a feature module."""

    name: str
    settings_class: type[SettingsT]
    # Modules this one needs loaded (it may import their __init__). The loader orders MODULES
    # by these and refuses a list that lacks one.
    requires: Sequence[str] = ()
    routers: Sequence[RouterSpec] = ()
    # The OpenAPI tags of its routers, in the order a reader should meet them, with what each
    # groups (Swagger shows the sections in this order, each with its description).
    tags: Mapping[str, str] = field(default_factory=dict)
    lifespan: Callable[[ModuleContext[SettingsT]], AbstractAsyncContextManager[None]] | None = None
    readiness_checks: Mapping[str, ReadinessCheck] = field(default_factory=dict)
    # Alembic versions folder of this module (its own branch, labelled with the module name).
    migrations: Path | None = None
    # The authentication slot (see app/auth.py): the `current user` dependency, a FastAPI
    # security dependency. At most one loaded module sets it.
    auth: Callable[..., Any] | None = None
    commands: Mapping[str, Command[SettingsT]] = field(default_factory=dict)
    # Event handlers (`on(UserRegistered, handler)`, see app/events.py).
    subscriptions: Sequence[Subscription[Any]] = ()
    # The permissions this module's routes (or other modules') may require, "<module>:<action>"
    # with a description: {"notes:write": "Create and change notes"}. See app/permissions.py.
    permissions: Mapping[str, str] = field(default_factory=dict)
    # Housekeeping the app runs in bounded batches, one process at a time (app/purge.py).
    purges: Mapping[str, PurgeBatch[SettingsT]] = field(default_factory=dict)


def settings_for(app: FastAPI, settings_class: type[SettingsT]) -> SettingsT:
    """The settings the loader validated for the module whose settings class this is, typed as
    that class (a module's dependencies read their settings with it)."""
    found: SettingsT = app.state.settings_by_class[settings_class]
    return found
