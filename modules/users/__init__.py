"""Users: accounts and authentication, built on fastapi-users.

Public surface (what other modules may import): `CurrentUser`, `Superuser`, `User`,
`RequirePermission` (a route that needs a permission: `RequirePermission("notes:write")`).
"""

from pathlib import Path

from app.module import Module
from modules.users.commands import create_superuser
from modules.users.dependencies import CurrentUser, Superuser, current_active_user
from modules.users.health import limiter_check
from modules.users.mails import lifespan
from modules.users.models import User
from modules.users.permissions import PERMISSIONS, RequirePermission
from modules.users.router import TAGS, routers
from modules.users.sessions_service import purge_sessions
from modules.users.settings import UsersSettings

module = Module[UsersSettings](
    name="users",
    settings_class=UsersSettings,
    # Mails (verification, reset) and the breached-password check go through integrations.
    requires=("integrations",),
    routers=routers,
    tags=TAGS,
    lifespan=lifespan,
    readiness_checks={"limiter": limiter_check},
    migrations=Path(__file__).parent / "migrations",
    # This module authenticates: every private route of every module is mounted behind it.
    auth=current_active_user,
    commands={"create-superuser": create_superuser},
    # users:* and roles:* (roles live in this module: they are checked where users are).
    permissions=PERMISSIONS,
    # Ended login sessions past SESSION_RETENTION, with their rotated refresh tokens.
    purges={"sessions": purge_sessions},
)

__all__ = ["CurrentUser", "RequirePermission", "Superuser", "User", "module"]
