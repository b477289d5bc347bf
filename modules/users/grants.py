"""What an access token says its holder may do: the `roles` and `scope` claims (RFC 9068 §2.2.3).

The seam for roles and permissions: `token_grants` is asked at every token issue (login and
refresh) and its answer is copied into the token. Until roles exist it answers no roles and no
permissions (the claims are still present: `roles: []`, `scope: ""`), so verifiers can rely on
them being there. Roles fill it in from the database (a superuser: every declared permission).

The claims are a snapshot as of the token's issue, for services that verify offline; Gatehouse
itself never reads them to authorize a request (it checks sessions and permissions live).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class TokenGrants:
    roles: tuple[str, ...] = ()
    permissions: tuple[str, ...] = ()

    @property
    def scope(self) -> str:
        """RFC 9068 / RFC 8693: space-separated, each permission once, in a stable order."""
        return " ".join(sorted(set(self.permissions)))


async def token_grants(db: AsyncSession, user_id: uuid.UUID) -> TokenGrants:
    """The roles and permissions to write into the user's next access token. Runs inside the
    request's unit of work (`db`), after the session row is written."""
    del db, user_id  # no roles yet: every user holds none (see the module docstring)
    return TokenGrants()
