"""Every query on roles (role, role_permission, user_role) and the superuser guard.

Flushes, never commits: the request's unit of work commits once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from modules.users.models import Role, RolePermission, User, UserRole

# fastapi-users types the user columns as plain attributes for mypy: go through the table.
_USER = cast(Table, User.__table__)


class RoleExists(Exception):
    """The name is taken (the insert met the primary key)."""


class RoleMissing(Exception):
    """A role named in a write does not exist (any more)."""


async def has_permission(db: AsyncSession, user_id: uuid.UUID, permission: str) -> bool:
    """The check on every request that requires a permission: one indexed join, read live."""
    statement = (
        select(UserRole.role_name)
        .join(RolePermission, RolePermission.role_name == UserRole.role_name)
        .where(UserRole.user_id == user_id, RolePermission.permission == permission)
        .limit(1)
    )
    return (await db.scalar(statement)) is not None


async def roles_and_permissions_of(
    db: AsyncSession, user_id: uuid.UUID
) -> tuple[list[str], set[str]]:
    """The user's role names (sorted) and every permission they grant, in one query."""
    statement = (
        select(UserRole.role_name, RolePermission.permission)
        .outerjoin(RolePermission, RolePermission.role_name == UserRole.role_name)
        .where(UserRole.user_id == user_id)
    )
    roles: set[str] = set()
    permissions: set[str] = set()
    for role_name, permission in (await db.execute(statement)).tuples():
        roles.add(role_name)
        if permission is not None:
            permissions.add(permission)
    return sorted(roles), permissions


async def all_roles(db: AsyncSession) -> dict[str, set[str]]:
    """Every role with its permissions, by name."""
    statement = select(Role.name, RolePermission.permission).outerjoin(
        RolePermission, RolePermission.role_name == Role.name
    )
    found: dict[str, set[str]] = {}
    for name, permission in (await db.execute(statement)).tuples():
        held = found.setdefault(name, set())
        if permission is not None:
            held.add(permission)
    return found


async def roles_named(db: AsyncSession, names: Iterable[str]) -> dict[str, set[str]]:
    """The roles among `names` that exist, with their permissions."""
    wanted = list(set(names))
    if not wanted:
        return {}
    statement = (
        select(Role.name, RolePermission.permission)
        .outerjoin(RolePermission, RolePermission.role_name == Role.name)
        .where(Role.name.in_(wanted))
    )
    found: dict[str, set[str]] = {}
    for name, permission in (await db.execute(statement)).tuples():
        held = found.setdefault(name, set())
        if permission is not None:
            held.add(permission)
    return found


async def add_role(db: AsyncSession, name: str, permissions: Iterable[str]) -> None:
    try:
        # A SAVEPOINT: two creations racing on one name meet the primary key; the loser's
        # clash undoes its own insert only and becomes RoleExists (409), never a 500.
        async with db.begin_nested():
            await db.execute(insert(Role).values(name=name))
    except IntegrityError:
        raise RoleExists from None
    await _insert_permissions(db, name, permissions)


async def set_role_permissions(db: AsyncSession, name: str, permissions: Iterable[str]) -> None:
    await db.execute(delete(RolePermission).where(RolePermission.role_name == name))
    await _insert_permissions(db, name, permissions)


async def _insert_permissions(db: AsyncSession, name: str, permissions: Iterable[str]) -> None:
    rows = [{"role_name": name, "permission": p} for p in sorted(set(permissions))]
    if rows:
        await db.execute(insert(RolePermission), rows)
    await db.flush()


async def delete_role(db: AsyncSession, name: str) -> bool:
    """Deletes the role and (cascade) its permissions and grants; whether it existed."""
    await db.execute(delete(UserRole).where(UserRole.role_name == name))
    await db.execute(delete(RolePermission).where(RolePermission.role_name == name))
    result: Any = await db.execute(delete(Role).where(Role.name == name))
    await db.flush()
    return bool(result.rowcount)


async def set_user_roles(db: AsyncSession, user_id: uuid.UUID, names: Iterable[str]) -> None:
    """The user holds exactly these roles from now on."""
    await db.execute(delete(UserRole).where(UserRole.user_id == user_id))
    rows = [{"user_id": user_id, "role_name": name} for name in sorted(set(names))]
    if rows:
        try:
            # A role deleted since it was looked up: its grant meets the foreign key.
            async with db.begin_nested():
                await db.execute(insert(UserRole), rows)
        except IntegrityError:
            raise RoleMissing from None
    await db.flush()


# The last active superuser -------------------------------------------------------------------


async def lock_active_superusers(db: AsyncSession) -> None:
    """Before a change that may end a superuser (demotion, deactivation, deletion): lock every
    active superuser's row (PostgreSQL), in one order so two such changes never deadlock. A
    concurrent change waits here until this transaction ends, then sees its outcome.
    SQLite has no row locks: there the change's own write takes the database's write lock, so
    the count that follows it (`active_superusers`) already serialises them."""
    statement = (
        select(_USER.c.id)
        .where(_USER.c.is_superuser.is_(True), _USER.c.is_active.is_(True))
        .order_by(_USER.c.id)
        .with_for_update()
    )
    await db.execute(statement)


async def active_superusers(db: AsyncSession) -> int:
    """How many active superusers there are, this transaction's own writes included."""
    await db.flush()
    statement = (
        select(func.count())
        .select_from(_USER)
        .where(_USER.c.is_superuser.is_(True), _USER.c.is_active.is_(True))
    )
    return int(await db.scalar(statement) or 0)


async def is_superuser(db: AsyncSession, user_id: uuid.UUID) -> bool:
    return bool(await db.scalar(select(_USER.c.is_superuser).where(_USER.c.id == user_id)))
