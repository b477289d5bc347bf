"""Errors of the users module, as problem documents (see app/errors.py)."""

from __future__ import annotations

from typing import Any

from app.database import CommitsBeforeRaising
from app.errors import CODE_DETAILS, ProblemError


class UsersError(ProblemError):
    """Base of the users module's client-visible errors."""


def oauth2_error(error: ProblemError | type[ProblemError]) -> dict[str, Any]:
    """OAuth2's error members (RFC 6749 §5.2) beside the problem's own, on login refusals:
    Swagger's Authorize dialog shows `error_description`, where it would show only the
    status text."""
    kind = "invalid_grant" if error.status_code == 400 else "invalid_request"
    return {"error": kind, "error_description": error.detail or error.code}


class LoginBadCredentials(UsersError):
    """fastapi-users' code, which clients already know."""

    status_code = 400
    code = "LOGIN_BAD_CREDENTIALS"
    detail = CODE_DETAILS["LOGIN_BAD_CREDENTIALS"]
    extra = {"error": "invalid_grant", "error_description": detail}


class RefreshTokenInvalid(UsersError):
    status_code = 401
    code = "REFRESH_TOKEN_INVALID"
    detail = "The refresh token is invalid, expired or revoked."


class RefreshTokenOfInactiveUser(RefreshTokenInvalid, CommitsBeforeRaising):
    """The same answer as RefreshTokenInvalid; the session it ended stays ended."""


class RefreshTokenReused(UsersError, CommitsBeforeRaising):
    """Reuse ends the session, then answers 401: that end must be committed, not rolled back
    with the failed request (see app/database.py)."""

    status_code = 401
    code = "REFRESH_TOKEN_REUSED"
    detail = "This refresh token was already used; its session has been ended."


class SessionNotFound(UsersError):
    status_code = 404
    code = "NOT_FOUND"
    detail = "You have no live session with this id."


class UndoEmailChangeBadToken(UsersError):
    status_code = 400
    code = "UNDO_EMAIL_CHANGE_BAD_TOKEN"
    detail = "The undo token is invalid, expired or already used."


class UndoEmailChangeInvalidPassword(UsersError):
    status_code = 400
    code = "UNDO_EMAIL_CHANGE_INVALID_PASSWORD"
    detail = "The new password is not acceptable."

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class RateLimited(UsersError):
    """Too many failed logins (or mail requests) for this username or client address."""

    status_code = 429
    code = "RATE_LIMITED"
    detail = "Too many attempts; try again later."

    def __init__(self, retry_after: int, scope: str) -> None:
        super().__init__(
            "Too many attempts; try again later.", headers={"Retry-After": str(retry_after)}
        )
        self.retry_after = retry_after
        # "user" or "address": for the log line only, never in the answer (the same body
        # for both keeps the answer from telling which limit an attacker hit).
        self.scope = scope


class AuthStateUnavailable(UsersError):
    """Redis did not take the change of a user's auth generation (modules/users/auth_cache.py):
    the change (a logout, a password change…) is rolled back rather than risk another process
    serving its cached answer. Nothing changed; the client tries again."""

    status_code = 503
    code = "SERVICE_UNAVAILABLE"
    detail = "The change could not be made now; try again shortly."
    headers = {"Retry-After": "5"}


# Roles and permissions ------------------------------------------------------------------------


class MissingPermission(UsersError):
    """The caller holds no role granting the permission the route requires."""

    status_code = 403
    code = "FORBIDDEN"

    def __init__(self, permission: str) -> None:
        super().__init__(f"This needs the permission {permission!r}, which you do not hold.")
        self.permission = permission


class PermissionsNotHeld(UsersError):
    """Granting (or defining, changing, removing) what the caller could not do itself."""

    status_code = 403
    code = "FORBIDDEN"

    def __init__(self, permissions: set[str]) -> None:
        names = ", ".join(sorted(permissions))
        super().__init__(f"You cannot grant or change permissions you do not hold: {names}.")


class SuperuserOnly(UsersError):
    status_code = 403
    code = "FORBIDDEN"
    detail = "Only a superuser may set is_superuser or change a superuser's account."


class RoleAlreadyExists(UsersError):
    status_code = 409
    code = "ROLE_ALREADY_EXISTS"
    detail = "A role with this name already exists."


class RoleNotFound(UsersError):
    status_code = 404
    code = "NOT_FOUND"
    detail = "No role has this name."


class LastSuperuser(UsersError):
    status_code = 409
    code = "LAST_SUPERUSER"
    detail = "The last active superuser cannot be deleted, deactivated or demoted."
