"""The users module's routes, at the paths of shared/SPEC.md."""

from __future__ import annotations

from app.module import RouterSpec
from modules.users.auth import auth_backend
from modules.users.dependencies import fastapi_users
from modules.users.schemas import UserCreate, UserRead, UserUpdate

routers = [
    RouterSpec(
        fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"], public=True
    ),
    RouterSpec(
        fastapi_users.get_register_router(UserRead, UserCreate),
        prefix="/auth",
        tags=["auth"],
        public=True,
    ),
    RouterSpec(
        fastapi_users.get_reset_password_router(), prefix="/auth", tags=["auth"], public=True
    ),
    RouterSpec(
        fastapi_users.get_verify_router(UserRead), prefix="/auth", tags=["auth"], public=True
    ),
    RouterSpec(
        fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
    ),
]
