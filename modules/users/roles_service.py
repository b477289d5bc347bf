"""Roles: who may define and grant them, and the rules on superusers' accounts. No HTTP here.

The rule behind every check: nobody hands out (or takes away) power they do not hold. A caller
may create, change, delete, grant or remove a role only if it holds every permission the role
grants (before and after the change); it may change another account (PATCH, DELETE, its roles)
only if that account holds nothing the caller does not. Superusers hold every permission; only
a superuser may set `is_superuser` or change a superuser's account, and the last active
superuser cannot be deleted, deactivated or demoted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from modules.users import roles_repository, users_repository
from modules.users.exceptions import (
    LastSuperuser,
    PermissionsNotHeld,
    RoleAlreadyExists,
    RoleNotFound,
    SuperuserOnly,
)
from modules.users.models import User


class UnknownRoles(Exception):
    """Roles named in a grant that do not exist (the endpoint answers 422 naming them)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        super().__init__(", ".join(self.names))


@dataclass(frozen=True)
class Holdings:
    """What an account may do: everything (a superuser) or the permissions of its roles."""

    superuser: bool
    roles: tuple[str, ...]
    permissions: frozenset[str]

    def lacks(self, wanted: Iterable[str]) -> set[str]:
        return set() if self.superuser else set(wanted) - self.permissions


class AccessService:
    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def holdings(self, user: User) -> Holdings:
        roles, permissions = await roles_repository.roles_and_permissions_of(self.db, user.id)
        return Holdings(user.is_superuser, tuple(roles), frozenset(permissions))

    async def _require_held(self, caller: User, wanted: Iterable[str]) -> None:
        wanted = set(wanted)
        if caller.is_superuser or not wanted:
            return
        missing = (await self.holdings(caller)).lacks(wanted)
        if missing:
            raise PermissionsNotHeld(missing)

    # Roles ----------------------------------------------------------------------------------

    async def list_roles(self) -> dict[str, set[str]]:
        return await roles_repository.all_roles(self.db)

    async def get_role(self, name: str) -> set[str]:
        found = await roles_repository.roles_named(self.db, [name])
        if name not in found:
            raise RoleNotFound
        return found[name]

    async def create_role(self, caller: User, name: str, permissions: set[str]) -> None:
        await self._require_held(caller, permissions)
        try:
            await roles_repository.add_role(self.db, name, permissions)
        except roles_repository.RoleExists:
            raise RoleAlreadyExists from None

    async def update_role(self, caller: User, name: str, permissions: set[str]) -> None:
        current = await self.get_role(name)
        # Both sides: neither widening nor narrowing a role beyond one's own power.
        await self._require_held(caller, current | permissions)
        await roles_repository.set_role_permissions(self.db, name, permissions)

    async def delete_role(self, caller: User, name: str) -> None:
        await self._require_held(caller, await self.get_role(name))
        await roles_repository.delete_role(self.db, name)

    # Accounts -------------------------------------------------------------------------------

    async def check_may_change_account(self, caller: User, target: User) -> None:
        """PATCH/DELETE /users/{id} and PUT /users/{id}/roles by someone holding users:write or
        roles:write: a superuser's account is a superuser's business, and an account holding
        more than the caller is out of its reach (its password or email would be a takeover)."""
        if caller.is_superuser or caller.id == target.id:
            return
        if target.is_superuser:
            raise SuperuserOnly
        await self._require_held(caller, (await self.holdings(target)).permissions)

    async def set_user_roles(self, caller: User, target: User, names: set[str]) -> list[str]:
        """Replaces the target's roles. Every role added or removed must be within the caller's
        permissions. Returns the roles it holds now."""
        if target.is_superuser and not caller.is_superuser:
            raise SuperuserOnly
        current, _ = await roles_repository.roles_and_permissions_of(self.db, target.id)
        changed = names.symmetric_difference(current)
        roles = await roles_repository.roles_named(self.db, changed)
        unknown = names - set(roles) - set(current)
        if unknown:
            raise UnknownRoles(unknown)
        await self._require_held(caller, {p for held in roles.values() for p in held})
        try:
            await roles_repository.set_user_roles(self.db, target.id, names)
        except roles_repository.RoleMissing:
            # Deleted between the look-up and the grant.
            raise UnknownRoles(names - set(current)) from None
        return sorted(names)

    async def lock_account(self, target: User) -> bool:
        """Waits for concurrent changes of the account; whether it still exists."""
        return await users_repository.lock_account(self.db, target.id)

    # The last active superuser --------------------------------------------------------------

    async def before_ending_a_superuser(self) -> None:
        await roles_repository.lock_active_superusers(self.db)

    async def after_ending_a_superuser(self) -> None:
        """Raises (the request rolls back) when the change left no active superuser."""
        if await roles_repository.active_superusers(self.db) == 0:
            raise LastSuperuser


def ends_a_superuser(target: User, update: dict[str, object] | None) -> bool:
    """Whether this change (None: a deletion) may leave one active superuser fewer."""
    if not (target.is_superuser and target.is_active):
        return False
    if update is None:
        return True
    return update.get("is_superuser") is False or update.get("is_active") is False
