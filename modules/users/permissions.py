"""`RequirePermission("users:read")`: the typed dependency that lets a route through only for
callers holding the permission (a role granting it, or superuser).

No `from __future__ import annotations` here: FastAPI reads the check's signature from an
instance's `__call__`, and cannot resolve string annotations there.

The check reads the caller's roles from the database on every request that needs it (one
indexed join, `roles_repository.has_permission`), never from the access token or a cache: a
role granted or removed holds on the caller's next request, in every process. Routes that need
no permission pay nothing. Superusers pass without a query.
"""

from typing import Annotated, Any

from fastapi import Depends

from app.database import DbSession
from modules.users import roles_repository
from modules.users.dependencies import current_active_user
from modules.users.exceptions import MissingPermission
from modules.users.models import User


class PermissionCheck:
    """One per permission (see `RequirePermission`): the same callable wherever a request
    asks for it, so FastAPI's per-request cache checks it once. The loader reads
    `required_permission` (app/permissions.py) to refuse undeclared permissions."""

    def __init__(self, permission: str) -> None:
        self.required_permission = permission

    def __repr__(self) -> str:
        return f"RequirePermission({self.required_permission!r})"

    async def __call__(
        self, user: Annotated[User, Depends(current_active_user)], db: DbSession
    ) -> User:
        if user.is_superuser:
            return user
        if await roles_repository.has_permission(db, user.id, self.required_permission):
            return user
        raise MissingPermission(self.required_permission)


_checks: dict[str, PermissionCheck] = {}


def RequirePermission(permission: str) -> Any:
    """`Depends` on the check of `permission`, for a parameter (`user: Annotated[User,
    RequirePermission("notes:write")]`, which hands the route the caller) or a router's or
    route's `dependencies=[...]`. Answers 403 FORBIDDEN naming the permission otherwise."""
    check = _checks.get(permission)
    if check is None:
        check = _checks[permission] = PermissionCheck(permission)
    return Depends(check)


# The users module's own permissions, as route parameters.
UsersReader = Annotated[User, RequirePermission("users:read")]
UsersWriter = Annotated[User, RequirePermission("users:write")]
RolesReader = Annotated[User, RequirePermission("roles:read")]
RolesWriter = Annotated[User, RequirePermission("roles:write")]

PERMISSIONS = {
    "users:read": "Read any account (GET /users, GET /users/{id})",
    "users:write": "Change or delete accounts holding no more than you (PATCH, DELETE /users/{id})",
    "roles:read": "List roles and what they grant (GET /roles)",
    "roles:write": "Define roles and grant them, within your own permissions",
}
