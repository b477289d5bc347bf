"""Users: accounts and authentication, built on fastapi-users.

Public surface (what other modules may import): `CurrentUser`, `Superuser`, `User`.
"""

from pathlib import Path

from app.auth import authenticated
from app.module import Module
from modules.users.commands import create_superuser
from modules.users.dependencies import CurrentUser, Superuser, current_active_user
from modules.users.health import limiter_check
from modules.users.models import User
from modules.users.router import routers
from modules.users.runtime import lifespan
from modules.users.settings import UsersSettings

module = Module(
    name="users",
    routers=routers,
    settings_class=UsersSettings,
    lifespan=lifespan,
    readiness_checks={"limiter": limiter_check},
    migrations=Path(__file__).parent / "migrations",
    dependency_overrides={authenticated: current_active_user},
    commands={"create-superuser": create_superuser},
)

__all__ = ["CurrentUser", "Superuser", "User", "module"]
