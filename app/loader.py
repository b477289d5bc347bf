"""Imports `modules.<name>` for each name in MODULES, checks its contract, orders the modules by
what they require and validates each one's settings.

The order: a module comes after every module it `requires` (its lifespan may use what they
opened); between independent modules, the order MODULES lists them in.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from app.module import Module
from app.permissions import is_permission_name, permissions_required_by
from app.settings import describe_validation_error

MODULES_PACKAGE = "modules"
_VALID_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ModuleLoadError(RuntimeError):
    """Start-up stops with this one line, naming the module."""


@dataclass(frozen=True)
class LoadedModule:
    # Any: the kernel handles every module alike; each module's own code sees its settings type.
    module: Module[Any]
    settings: Any


def import_module(name: str) -> Module[Any]:
    if not _VALID_NAME.match(name):
        raise ModuleLoadError(f"module {name!r}: not a valid module name")
    try:
        package = importlib.import_module(f"{MODULES_PACKAGE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"{MODULES_PACKAGE}.{name}", MODULES_PACKAGE):
            raise ModuleLoadError(f"module {name!r}: no package {MODULES_PACKAGE}/{name}") from None
        raise ModuleLoadError(f"module {name!r} failed to import: {exc}") from exc
    except Exception as exc:
        raise ModuleLoadError(
            f"module {name!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc
    module = getattr(package, "module", None)
    if not isinstance(module, Module):
        raise ModuleLoadError(
            f"module {name!r}: {MODULES_PACKAGE}/{name}/__init__.py must define `module: Module`"
        )
    if module.name != name:
        raise ModuleLoadError(f"module {name!r}: its Module is named {module.name!r}")
    return module


def order_by_requirements(modules: Sequence[Module[Any]]) -> list[Module[Any]]:
    """Every module after the ones it requires, otherwise in the given order. Refuses a missing
    requirement or a cycle with one line naming the modules."""
    by_name = {m.name: m for m in modules}
    for module in modules:
        for required in module.requires:
            if required not in by_name:
                raise ModuleLoadError(
                    f"module {module.name!r} requires module {required!r}: add {required!r} "
                    "to MODULES"
                )
    ordered: list[Module[Any]] = []
    placed: set[str] = set()
    remaining = list(modules)
    while remaining:
        # The first listed module whose requirements are all placed (stable for the rest).
        ready = next((m for m in remaining if set(m.requires) <= placed), None)
        if ready is None:
            raise ModuleLoadError(f"modules require each other in a cycle: {_cycle(remaining)}")
        ordered.append(ready)
        placed.add(ready.name)
        remaining.remove(ready)
    return ordered


def _cycle(modules: Sequence[Module[Any]]) -> str:
    """One cycle among modules that cannot be placed, e.g. `a -> b -> a`."""
    by_name = {m.name: m for m in modules}
    path = [modules[0].name]
    while True:
        following = next(r for r in by_name[path[-1]].requires if r in by_name)
        if following in path:
            return " -> ".join([*path[path.index(following) :], following])
        path.append(following)


def load_modules(
    names: Sequence[str], settings_overrides: Mapping[str, BaseSettings] | None = None
) -> list[LoadedModule]:
    if len(set(names)) != len(names):
        raise ModuleLoadError(f"MODULES names a module twice: {','.join(names)}")
    modules = order_by_requirements([import_module(name) for name in names])
    authenticating = [m.name for m in modules if m.auth is not None]
    if len(authenticating) > 1:
        raise ModuleLoadError(
            f"modules {' and '.join(map(repr, authenticating))} both provide authentication; "
            "load one of them"
        )
    check_permissions(modules)
    loaded = []
    for module in modules:
        settings = (settings_overrides or {}).get(module.name)
        if settings is None:
            try:
                settings = module.settings_class()
            except ValidationError as exc:
                raise ModuleLoadError(
                    f"module {module.name!r}: {describe_validation_error(exc)}"
                ) from None
            except ValueError as exc:
                raise ModuleLoadError(f"module {module.name!r}: {exc}") from None
        elif not isinstance(settings, module.settings_class):
            raise ModuleLoadError(
                f"module {module.name!r}: its settings must be a {module.settings_class.__name__}"
            )
        loaded.append(LoadedModule(module=module, settings=settings))
    return loaded


def check_permissions(modules: Sequence[Module[Any]]) -> dict[str, str]:
    """Every permission the modules declare (name -> description). Refuses a malformed name, a
    permission declared twice, and a route that requires a permission nobody declares."""
    declared: dict[str, str] = {}
    declared_by: dict[str, str] = {}
    for module in modules:
        for permission, description in module.permissions.items():
            if not is_permission_name(permission):
                raise ModuleLoadError(
                    f"module {module.name!r}: permission {permission!r} is not "
                    "'<module>:<action>' (lower_snake_case)"
                )
            if permission in declared_by:
                raise ModuleLoadError(
                    f"permission {permission!r} is declared by modules "
                    f"{declared_by[permission]!r} and {module.name!r}"
                )
            declared[permission] = description
            declared_by[permission] = module.name
    for module in modules:
        for spec in module.routers:
            for route in spec.router.routes:
                if not isinstance(route, APIRoute):
                    continue
                for permission in sorted(permissions_required_by(route)):
                    if permission not in declared:
                        methods = ",".join(sorted(route.methods or ()))
                        raise ModuleLoadError(
                            f"module {module.name!r}: {methods} {spec.prefix}{route.path} "
                            f"requires permission {permission!r}, which no loaded module declares"
                        )
    return declared
