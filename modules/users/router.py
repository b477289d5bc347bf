"""The users module's routes, at the paths of shared/SPEC.md."""

from __future__ import annotations

from app.module import RouterSpec
from modules.users.dependencies import fastapi_users
from modules.users.endpoints import auth_router, sessions_router
from modules.users.schemas import UserCreate, UserRead, UserUpdate

routers = [
    # Ours instead of fastapi_users.get_auth_router(): refresh tokens and real logout.
    RouterSpec(auth_router.public_router, prefix="/auth/jwt", tags=["auth"], public=True),
    RouterSpec(auth_router.bearer_router, prefix="/auth/jwt", tags=["auth"]),
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
    # Before fastapi-users' users router, so /users/me/sessions is never read as /users/{id}.
    RouterSpec(sessions_router.router, prefix="/users", tags=["users"]),
    RouterSpec(
        fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
    ),
]
