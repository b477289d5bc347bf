"""What an access token says its holder may do: the `roles` and `scope` claims (RFC 9068 §2.2.3).

The seam for roles and permissions: `token_grants` is asked at every token issue (login and
refresh) and its answer is copied into the token: the user's roles and the permissions they
grant, from the database (a superuser: every declared permission). A user without roles gets
`roles: []`, `scope: ""`: the claims are always there.

The claims are a snapshot as of the token's issue, for services that verify offline; Gatehouse
itself never reads them to authorize a request (it checks sessions and permissions live).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from modules.users import roles_repository


@dataclass(frozen=True)
class TokenGrants:
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        """RFC 9068 / RFC 8693: space-separated, each permission once, in a stable order."""
        return " ".join(sorted(set(self.permissions)))


async def token_grants(
    db: AsyncSession, user_id: uuid.UUID, every_permission: Iterable[str] = ()
) -> TokenGrants:
    """The roles and permissions to write into the user's next access token, read from the
    database in the request's unit of work (`db`), after the session row is written. A
    superuser's scope is `every_permission` (what the loaded modules declare) with whatever its
    roles grant."""
    roles, permissions = await roles_repository.roles_and_permissions_of(db, user_id)
    if await roles_repository.is_superuser(db, user_id):
        permissions |= set(every_permission)
    return TokenGrants(roles=tuple(roles), permissions=tuple(sorted(permissions)))
