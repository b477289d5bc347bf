"""The users module's routes, at the paths of docs/api.md."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.routing import APIRoute

from app.module import RouterSpec
from modules.users.dependencies import fastapi_users, registration_budget
from modules.users.endpoints import (
    accounts_router,
    admin_router,
    auth_router,
    pages_router,
    recovery_router,
    roles_router,
    sessions_router,
)
from modules.users.endpoints.responses import problem_examples
from modules.users.exceptions import RateLimited
from modules.users.schemas import UserCreate, UserRead, UserUpdate

# fastapi-users names its routes ("users:patch_current_user") and FastAPI would make the
# summary from that name; Swagger shows these instead.
SUMMARIES = {
    "register:register": "Create an account",
    "reset:reset_password": "Set a new password with the mailed token (ends every session)",
    "verify:verify": "Confirm the email address with the mailed token",
    "users:current_user": "Read my account",
    "users:patch_current_user": "Update my account (new password or email: `current_password`)",
}


# Wrong `current_password` guesses count like failed logins: past the limit these answer 429.
RATE_LIMITED_ROUTES = {"users:patch_current_user"}


def _without(router: APIRouter, *paths: str) -> APIRouter:
    """fastapi-users' router minus the routes this module replaces (endpoints/), with readable
    summaries and the 429 our limits add."""
    router.routes = [r for r in router.routes if getattr(r, "path", None) not in paths]
    for route in router.routes:
        if isinstance(route, APIRoute) and route.name in SUMMARIES:
            route.summary = SUMMARIES[route.name]
        if isinstance(route, APIRoute) and route.name in RATE_LIMITED_ROUTES:
            route.responses.update(problem_examples(429, RateLimited))
    return router


def _registration_limited(router: APIRouter) -> APIRouter:
    """fastapi-users' register route behind the per-address registration budget."""
    limited = APIRouter(dependencies=[Depends(registration_budget)])
    limited.include_router(router, responses=problem_examples(429, RateLimited))
    return limited


routers = [
    # Ours instead of fastapi_users.get_auth_router(): refresh tokens and real logout.
    RouterSpec(auth_router.public_router, prefix="/auth/jwt", tags=["auth"], public=True),
    RouterSpec(auth_router.bearer_router, prefix="/auth/jwt", tags=["auth"]),
    RouterSpec(
        _registration_limited(_without(fastapi_users.get_register_router(UserRead, UserCreate))),
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
    RouterSpec(admin_router.router, prefix="/users", tags=["users"]),
    # forgot-password and request-verify-token: 202 at once, the work after.
    RouterSpec(recovery_router.router, prefix="/auth", tags=["auth"], public=True),
    # The HTML pages mailed links open (not in the OpenAPI contract).
    RouterSpec(pages_router.router, prefix="/auth", public=True),
    # Only /users/me of fastapi-users' users router: its superuser-only /users/{id} routes
    # are replaced by accounts_router's, guarded by permissions. After /users/me, so "me" is
    # never read as an id.
    RouterSpec(
        _without(fastapi_users.get_users_router(UserRead, UserUpdate), "/{id}"),
        prefix="/users",
        tags=["users"],
    ),
    RouterSpec(accounts_router.router, prefix="/users", tags=["users"]),
    RouterSpec(roles_router.router, prefix="/roles", tags=["roles"]),
]
