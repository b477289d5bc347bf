"""The users module's routes, at the paths of shared/SPEC.md."""

from __future__ import annotations

from fastapi import APIRouter

from app.module import RouterSpec
from modules.users import recovery
from modules.users.dependencies import fastapi_users
from modules.users.endpoints import auth_router, sessions_router
from modules.users.schemas import UserCreate, UserRead, UserUpdate


def _without(router: APIRouter, *paths: str) -> APIRouter:
    """fastapi-users' router minus the routes this module replaces (see recovery.py)."""
    router.routes = [r for r in router.routes if getattr(r, "path", None) not in paths]
    return router


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
        _without(fastapi_users.get_reset_password_router(), "/forgot-password"),
        prefix="/auth",
        tags=["auth"],
        public=True,
    ),
    RouterSpec(
        _without(fastapi_users.get_verify_router(UserRead), "/request-verify-token"),
        prefix="/auth",
        tags=["auth"],
        public=True,
    ),
    # Before fastapi-users' users router, so /users/me/sessions is never read as /users/{id}.
    RouterSpec(sessions_router.router, prefix="/users", tags=["users"]),
    # forgot-password and request-verify-token: 202 at once, the work after (recovery.py).
    RouterSpec(recovery.router, prefix="/auth", tags=["auth"], public=True),
    RouterSpec(
        fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
    ),
]
