"""Other people's accounts, by permission (users:read, users:write, roles:write), and the
caller's own permissions.

These replace fastapi-users' superuser-only `/users/{id}` routes (same paths, names and
bodies), adding the rules of roles_service.py: only a superuser may set `is_superuser` or
change a superuser's account; nobody changes an account holding more than they do; the last
active superuser cannot be deleted, deactivated or demoted (checked under a lock, see
roles_repository.lock_active_superusers).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi_users import exceptions
from fastapi_users.router.common import ErrorCode
from sqlalchemy.orm.exc import StaleDataError

from app.permissions import declared_permissions
from modules.users.dependencies import AccessServiceDep, CurrentUser, UserManagerDep
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import (
    LastSuperuser,
    MissingPermission,
    PermissionsNotHeld,
    RateLimited,
    SuperuserOnly,
)
from modules.users.models import User
from modules.users.permissions import RolesWriter, UsersReader, UsersWriter
from modules.users.roles_service import UnknownRoles, ends_a_superuser
from modules.users.schemas import (
    MyPermissions,
    UserRead,
    UserRolesRead,
    UserRolesUpdate,
    UserUpdate,
)

router = APIRouter()

_NOT_FOUND = problem_examples(404, "NOT_FOUND")
_MAY_NOT_CHANGE = problem_examples(403, MissingPermission, SuperuserOnly, PermissionsNotHeld)


async def account_or_404(id: str, manager: UserManagerDep) -> User:
    try:
        return await manager.get(manager.parse_id(id))
    except (exceptions.UserNotExists, exceptions.InvalidID):
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND) from None


Account = Annotated[User, Depends(account_or_404)]


@router.get(
    "/me/permissions",
    name="users:my_permissions",
    summary="My roles and every permission I hold (read live, as every check is)",
)
async def my_permissions(
    user: CurrentUser, request: Request, access: AccessServiceDep
) -> MyPermissions:
    holdings = await access.holdings(user)
    held = set(declared_permissions(request.app)) if user.is_superuser else holdings.permissions
    return MyPermissions(roles=list(holdings.roles), permissions=sorted(held))


@router.get(
    "/{id}",
    name="users:get_user",
    summary="Read an account (users:read)",
    responses={**problem_examples(403, MissingPermission), **_NOT_FOUND},
)
async def get_user(_caller: UsersReader, account: Account) -> UserRead:
    return UserRead.model_validate(account)


@router.patch(
    "/{id}",
    name="users:update_user",
    summary="Update an account (users:write; a superuser's account or is_superuser: superuser)",
    responses={
        **problem_examples(
            400,
            ErrorCode.UPDATE_USER_EMAIL_ALREADY_EXISTS.value,
            ErrorCode.UPDATE_USER_INVALID_PASSWORD.value,
        ),
        **_MAY_NOT_CHANGE,
        **_NOT_FOUND,
        **problem_examples(409, LastSuperuser),
        **problem_examples(429, RateLimited),
    },
)
async def patch_user(
    body: UserUpdate,
    request: Request,
    caller: UsersWriter,
    account: Account,
    manager: UserManagerDep,
    access: AccessServiceDep,
) -> UserRead:
    await access.check_may_change_account(caller, account)
    changes = body.model_dump(exclude_unset=True)
    if (
        "is_superuser" in changes
        and changes["is_superuser"] != account.is_superuser
        and not caller.is_superuser
    ):
        raise SuperuserOnly
    guarded = ends_a_superuser(account, changes)
    if guarded:
        await access.before_ending_a_superuser()
    try:
        updated = await manager.update(body, account, safe=False, request=request)
    except exceptions.InvalidPasswordException as exc:
        raise HTTPException(
            status_code=status.HTTP_400_BAD_REQUEST,
            detail={"code": ErrorCode.UPDATE_USER_INVALID_PASSWORD, "reason": exc.reason},
        ) from None
    except exceptions.UserAlreadyExists:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, detail=ErrorCode.UPDATE_USER_EMAIL_ALREADY_EXISTS
        ) from None
    except StaleDataError:
        # Deleted by a concurrent request since it was read: as if it had never been found.
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND) from None
    if guarded:
        await access.after_ending_a_superuser()
    return UserRead.model_validate(updated)


@router.delete(
    "/{id}",
    name="users:delete_user",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Delete an account (users:write; a superuser's account: superuser)",
    responses={**_MAY_NOT_CHANGE, **_NOT_FOUND, **problem_examples(409, LastSuperuser)},
)
async def delete_user(
    request: Request,
    caller: UsersWriter,
    account: Account,
    manager: UserManagerDep,
    access: AccessServiceDep,
) -> None:
    await access.check_may_change_account(caller, account)
    guarded = ends_a_superuser(account, None)
    if guarded:
        await access.before_ending_a_superuser()
    if not await access.lock_account(account):
        # Deleted by a concurrent request since it was read.
        raise HTTPException(status_code=status.HTTP_404_NOT_FOUND)
    await manager.delete(account, request=request)
    if guarded:
        await access.after_ending_a_superuser()


@router.put(
    "/{id}/roles",
    name="users:set_roles",
    summary="Set an account's roles (roles:write; only roles within your own permissions)",
    responses={**_MAY_NOT_CHANGE, **_NOT_FOUND},
)
async def set_roles(
    body: UserRolesUpdate, caller: RolesWriter, account: Account, access: AccessServiceDep
) -> UserRolesRead:
    try:
        roles = await access.set_user_roles(caller, account, set(body.roles))
    except UnknownRoles as exc:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "roles", body.roles.index(name)),
                    "msg": f"Unknown role {name!r}.",
                    "type": "value_error",
                }
                for name in exc.names
            ]
        ) from None
    return UserRolesRead(roles=roles)
