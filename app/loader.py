"""Imports `modules.<name>` for each name in MODULES, in order, and checks its contract."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from app.module import Module
from app.settings import describe_validation_error

MODULES_PACKAGE = "modules"
_VALID_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ModuleLoadError(RuntimeError):
    """Start-up stops with this one line, naming the module."""


@dataclass(frozen=True)
class LoadedModule:
    module: Module
    settings: BaseSettings | None


def import_module(name: str) -> Module:
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


def load_modules(
    names: Sequence[str], settings_overrides: Mapping[str, BaseSettings] | None = None
) -> list[LoadedModule]:
    if len(set(names)) != len(names):
        raise ModuleLoadError(f"MODULES names a module twice: {','.join(names)}")
    loaded = []
    for name in names:
        module = import_module(name)
        settings = (settings_overrides or {}).get(name)
        if settings is None and module.settings_class is not None:
            try:
                settings = module.settings_class()
            except ValidationError as exc:
                raise ModuleLoadError(
                    f"module {name!r}: {describe_validation_error(exc)}"
                ) from None
            except ValueError as exc:
                raise ModuleLoadError(f"module {name!r}: {exc}") from None
        loaded.append(LoadedModule(module=module, settings=settings))
    return loaded
