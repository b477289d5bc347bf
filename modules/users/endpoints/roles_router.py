"""/roles: named sets of permissions (roles:read to list, roles:write to change).

Whoever changes a role must hold every permission it grants, before and after the change
(roles_service.py); a permission no loaded module declares is refused with 422 naming it.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError

from app.permissions import declared_permissions
from modules.users.dependencies import AccessServiceDep
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import (
    MissingPermission,
    PermissionsNotHeld,
    RoleAlreadyExists,
    RoleNotFound,
)
from modules.users.permissions import RolesReader, RolesWriter
from modules.users.schemas import RoleCreate, RoleRead, RoleUpdate

router = APIRouter()

_FORBIDDEN = problem_examples(403, MissingPermission, PermissionsNotHeld)


def declared_only(request: Request, permissions: Sequence[str], field: str) -> set[str]:
    """The permissions, each declared by a loaded module; else 422 naming the unknown ones."""
    declared = declared_permissions(request.app)
    unknown = [
        {
            "loc": ("body", field, index),
            "msg": f"Unknown permission {name!r}: no loaded module declares it.",
            "type": "value_error",
        }
        for index, name in enumerate(permissions)
        if name not in declared
    ]
    if unknown:
        raise RequestValidationError(unknown)
    return set(permissions)


def _read(name: str, permissions: set[str]) -> RoleRead:
    return RoleRead(name=name, permissions=sorted(permissions))


@router.get(
    "",
    name="roles:list",
    summary="List the roles and their permissions (roles:read)",
    responses=problem_examples(403, MissingPermission),
)
async def list_roles(_caller: RolesReader, access: AccessServiceDep) -> list[RoleRead]:
    roles = await access.list_roles()
    return [_read(name, roles[name]) for name in sorted(roles)]


@router.post(
    "",
    name="roles:create",
    status_code=status.HTTP_201_CREATED,
    summary="Create a role (roles:write; only with permissions you hold)",
    responses={**_FORBIDDEN, **problem_examples(409, RoleAlreadyExists)},
)
async def create_role(
    body: RoleCreate, request: Request, caller: RolesWriter, access: AccessServiceDep
) -> RoleRead:
    permissions = declared_only(request, body.permissions, "permissions")
    await access.create_role(caller, body.name, permissions)
    return _read(body.name, permissions)


@router.patch(
    "/{name}",
    name="roles:update",
    summary="Set a role's permissions (roles:write; its old and new ones must be yours)",
    responses={**_FORBIDDEN, **problem_examples(404, RoleNotFound)},
)
async def update_role(
    name: str, body: RoleUpdate, request: Request, caller: RolesWriter, access: AccessServiceDep
) -> RoleRead:
    permissions = declared_only(request, body.permissions, "permissions")
    await access.update_role(caller, name, permissions)
    return _read(name, permissions)


@router.delete(
    "/{name}",
    name="roles:delete",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete a role; whoever held it loses it at once (roles:write)",
    responses={**_FORBIDDEN, **problem_examples(404, RoleNotFound)},
)
async def delete_role(name: str, caller: RolesWriter, access: AccessServiceDep) -> None:
    await access.delete_role(caller, name)
