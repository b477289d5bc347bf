"""The users module's routes, at the paths of docs/api.md."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status
from fastapi.routing import APIRoute

from app.errors import CODE_DETAILS
from app.module import RouterSpec
from modules.users.dependencies import fastapi_users, registration_budget
from modules.users.endpoints import (
    accounts_router,
    admin_router,
    auth_router,
    jwks_router,
    pages_router,
    recovery_router,
    roles_router,
    sessions_router,
    verify_router,
)
from modules.users.endpoints.responses import SHORT_PASSWORD_REASON, problem_examples
from modules.users.exceptions import RateLimited
from modules.users.schemas import UserCreate, UserRead, UserUpdate

# The OpenAPI tags, in the order of a user's path (Swagger shows them so).
TAGS = {
    "auth": "Create an account, log in (the Authorize button), refresh, log out.",
    "recovery": "A forgotten password (mail, then reset); undoing an email change.",
    "verification": "Confirming an email address (mail, then verify).",
    "users": "My account, my sessions, my permissions; other accounts (by permission).",
    "roles": "Roles: named sets of permissions, granted to accounts.",
}

# fastapi-users' route names, as ours: the verb says what the route does, and the operation
# id comes from it (app/openapi.py: `users:get_me` → `getMe`).
NAMES = {
    "users:current_user": "users:get_me",
    "users:patch_current_user": "users:update_me",
    "users:user": "users:get_user",
    "users:patch_user": "users:update_user",
}

# FastAPI would make the summary from the route name; Swagger shows these instead.
SUMMARIES = {
    "register:register": "Create an account",
    "users:get_me": "Read my account",
    "users:update_me": "Update my account (new password or email: `current_password`)",
}

# Wrong `current_password` guesses count like failed logins: past the limit these answer 429.
RATE_LIMITED_ROUTES = {"users:update_me", "users:update_user"}

# fastapi-users' examples of a refused password invent a rule ("at least 3 characters").
PASSWORD_ERRORS = {
    "register:register": ("REGISTER_INVALID_PASSWORD", "REGISTER_USER_ALREADY_EXISTS"),
    "users:update_me": ("UPDATE_USER_INVALID_PASSWORD", "UPDATE_USER_EMAIL_ALREADY_EXISTS"),
    "users:update_user": ("UPDATE_USER_INVALID_PASSWORD", "UPDATE_USER_EMAIL_ALREADY_EXISTS"),
}


def _without(router: APIRouter, *paths: str) -> APIRouter:
    """fastapi-users' router minus the routes this module replaces (endpoints/), with our
    names, readable summaries, real examples and the 429 our limits add."""
    router.routes = [r for r in router.routes if getattr(r, "path", None) not in paths]
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        route.name = NAMES.get(route.name, route.name)
        route.summary = SUMMARIES.get(route.name, route.summary)
        if route.name in RATE_LIMITED_ROUTES:
            route.responses.update(problem_examples(429, RateLimited))
        if route.name in PASSWORD_ERRORS:
            invalid, taken = PASSWORD_ERRORS[route.name]
            route.responses.pop(status.HTTP_400_BAD_REQUEST, None)
            route.responses.update(
                problem_examples(
                    400, (invalid, SHORT_PASSWORD_REASON), (taken, CODE_DETAILS[taken])
                )
            )
    return router


def _registration_limited(router: APIRouter) -> APIRouter:
    """fastapi-users' register route behind the per-address registration budget."""
    limited = APIRouter(dependencies=[Depends(registration_budget)])
    limited.include_router(router, responses=problem_examples(429, RateLimited))
    return limited


# GET /users/me first: it is the request clients make most, and FastAPI tries the mounted
# routers in order (about a tenth of that request's CPU went to trying the routes before it).
# Then in the order of a user's path. OpenAPI lists paths in mounting order, Swagger UI groups
# them by tag in the order of TAGS.
routers = [
    RouterSpec(
        # /users/me (fastapi-users' router, its /users/{id} routes removed).
        _without(fastapi_users.get_users_router(UserRead, UserUpdate), "/{id}"),
        prefix="/users",
        tags=["users"],
    ),
    RouterSpec(
        # fastapi-users types the create schema as a BaseUserCreate; ours holds only what a
        # client may send (the manager reads nothing else).
        _registration_limited(
            _without(fastapi_users.get_register_router(UserRead, UserCreate))  # type: ignore[type-var]
        ),
        prefix="/auth",
        tags=["auth"],
        public=True,
    ),
    # Ours instead of fastapi_users.get_auth_router(): refresh tokens and real logout.
    RouterSpec(auth_router.public_router, prefix="/auth/jwt", tags=["auth"], public=True),
    RouterSpec(auth_router.bearer_router, prefix="/auth/jwt", tags=["auth"]),
    # Other services fetch the public keys without logging in.
    RouterSpec(jwks_router.router, prefix="/.well-known", tags=["auth"], public=True),
    # Ours instead of fastapi-users' reset and verify routers: 202 at once for the mail
    # requests, named bodies.
    RouterSpec(recovery_router.router, prefix="/auth", tags=["recovery"], public=True),
    RouterSpec(verify_router.router, prefix="/auth", tags=["verification"], public=True),
    # After /users/me (mounted first, above): ours, by permission, and the roles.
    RouterSpec(accounts_router.router, prefix="/users", tags=["users"]),
    RouterSpec(roles_router.router, prefix="/roles", tags=["roles"]),
    # /users/me/sessions and /users/{id} never meet: a path parameter matches one segment.
    RouterSpec(sessions_router.router, prefix="/users", tags=["users"]),
    RouterSpec(admin_router.router, prefix="/users", tags=["users"]),
    # The HTML pages mailed links open (not in the OpenAPI contract).
    RouterSpec(pages_router.router, prefix="/auth", public=True),
]
