"""Permissions: strings `"<module>:<action>"` that modules declare and routes require.

The kernel only knows the names. Each module declares its own in `Module(permissions=...)`
(`{"users:read": "Read any account", ...}`); the authenticating module decides who holds them
(roles, superusers) and gives routes the dependency that checks it. Such a dependency's callable
carries `required_permission`: that is how the loader finds, at start-up, every permission a
route requires, and refuses one that no loaded module declares (a typo would otherwise be a
route nobody can ever call).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

# "<module>:<action>", both lower_snake_case: "users:read", "billing:refund".
PERMISSION_PATTERN = re.compile(r"[a-z][a-z0-9_]*:[a-z][a-z0-9_]*")


def is_permission_name(value: str) -> bool:
    return PERMISSION_PATTERN.fullmatch(value) is not None


def required_permission_of(call: Any) -> str | None:
    """The permission a dependency checks, if it is a permission check."""
    permission = getattr(call, "required_permission", None)
    return permission if isinstance(permission, str) else None


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    pending = [dependant]
    while pending:
        current = pending.pop()
        yield current
        pending.extend(current.dependencies)


def permissions_required_by(route: APIRoute) -> set[str]:
    """Every permission the route's dependency tree checks (its router's dependencies too)."""
    found = set()
    for dependant in _walk(route.dependant):
        permission = required_permission_of(dependant.call)
        if permission is not None:
            found.add(permission)
    return found


def declared_permissions(app: FastAPI) -> Mapping[str, str]:
    """Every permission the loaded modules declare, with its description (set by the factory)."""
    declared: Mapping[str, str] = app.state.permissions
    return declared
