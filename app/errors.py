"""Every error a client can see is `application/problem+json` (RFC 9457), built here.

Handlers map HTTPException (keeping fastapi-users' detail codes in `code`), validation errors,
unknown routes and methods, an unreachable database, and (from the middleware) anything
unhandled. `app/openapi.py` documents the same shape.
"""

from __future__ import annotations

import asyncio
import re
from enum import Enum
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.context import request_id_var

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Our codes for statuses that fastapi-users raises without one.
DEFAULT_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    409: "CONFLICT",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

# Human sentences for fastapi-users' bare codes; `code` still carries the code verbatim.
CODE_DETAILS: dict[str, str] = {
    "LOGIN_BAD_CREDENTIALS": "Bad credentials or the user is inactive.",
    "LOGIN_USER_NOT_VERIFIED": "The user is not verified.",
    "REGISTER_USER_ALREADY_EXISTS": "A user with this email already exists.",
    "RESET_PASSWORD_BAD_TOKEN": "The reset token is invalid or expired.",
    "VERIFY_USER_BAD_TOKEN": "The verification token is invalid or expired.",
    "VERIFY_USER_ALREADY_VERIFIED": "The user is already verified.",
    "UPDATE_USER_EMAIL_ALREADY_EXISTS": "A user with this email already exists.",
    "UPDATE_USER_INVALID_PASSWORD": "The new password is not acceptable.",
    "UNAUTHORIZED": "Missing, invalid or expired credentials.",
    "FORBIDDEN": "You are not allowed to do this.",
    "NOT_FOUND": "Nothing was found at this address.",
    "SERVICE_UNAVAILABLE": "A service this request needs is unavailable; try again shortly.",
    "ROLE_ALREADY_EXISTS": "A role with this name already exists.",
    "LAST_SUPERUSER": "The last active superuser cannot be deleted, deactivated or demoted.",
    "INTERNAL_ERROR": "An unexpected error occurred.",
}


# RFC 9110's reason phrases where they differ from Python 3.11's `HTTPStatus` (newer Pythons
# use these): the same title on every interpreter, in answers and in the committed schema.
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def problem_title(status: int) -> str:
    return _TITLES.get(status) or HTTPStatus(status).phrase


class ValidationIssue(BaseModel):
    """One reason a request was refused with 422."""

    loc: list[str] = Field(
        description="Where: `body`, `query`, `path` or `header`, then the field's path.",
        examples=[["body", "email"]],
    )
    msg: str = Field(examples=["Field required"])
    type: str = Field(description="pydantic's error type.", examples=["missing"])


class ProblemDetail(BaseModel):
    """RFC 9457 problem details, with Gatehouse's `code` and `request_id`.

    OpenAPI lists every `code` the API answers with (app/openapi.py builds the enum from
    `known_codes()`); a client may still meet a new code after an upgrade and should fall
    back on `status`.
    """

    type: str = Field(default="about:blank", examples=["about:blank"])
    title: str = Field(examples=["Bad Request"])
    status: int = Field(examples=[400])
    detail: str = Field(examples=["A user with this email already exists."])
    instance: str = Field(description="The request's path.", examples=["/auth/register"])
    code: str = Field(examples=["REGISTER_USER_ALREADY_EXISTS"])
    request_id: str | None = Field(default=None, examples=["3f1c2a9e8b7d4c6f"])
    errors: list[ValidationIssue] | None = Field(
        default=None, description="Validation failures (422 only)."
    )
    error: str | None = Field(
        default=None,
        description="OAuth2 error code (RFC 6749 §5.2), on failed logins only.",
        examples=["invalid_grant"],
    )
    error_description: str | None = Field(
        default=None,
        description="The same text as `detail`, on failed logins only (OAuth2 clients and "
        "Swagger's Authorize dialog show it).",
    )


class ProblemError(Exception):
    """Raise from any layer to answer with a problem: the module's own exceptions subclass it."""

    status_code: int = 400
    code: str = "BAD_REQUEST"
    detail: str | None = None
    headers: dict[str, str] | None = None
    # Extension members added to the problem document (never replacing its own).
    extra: dict[str, Any] | None = None

    def __init__(
        self,
        detail: str | None = None,
        *,
        status_code: int | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if status_code is not None:
            self.status_code = status_code
        if code is not None:
            self.code = code
        if detail is not None:
            self.detail = detail
        if headers is not None:
            self.headers = headers
        super().__init__(self.detail or self.code)


def default_code(status: int) -> str:
    return DEFAULT_CODES.get(status) or HTTPStatus(status).name


def known_codes() -> set[str]:
    """Every `code` the app knows it can answer: the defaults, the sentences above and every
    `ProblemError` subclass imported so far (the modules' own errors, collected, not listed).
    app/openapi.py adds the codes the routes document; the schema's enum is their union."""
    codes = set(DEFAULT_CODES.values()) | set(CODE_DETAILS)
    pending: list[type[ProblemError]] = [ProblemError]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending.extend(cls.__subclasses__())
    return codes


def problem_response(
    request_path: str,
    status: int,
    code: str | None = None,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    code = code or default_code(status)
    title = problem_title(status)
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail or CODE_DETAILS.get(code, title),
        "instance": request_path,
        "code": code,
        "request_id": request_id_var.get(),
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _code_and_detail(status: int, detail: Any) -> tuple[str | None, str | None]:
    """fastapi-users puts a code in `detail` (a string, or {"code", "reason"})."""
    if isinstance(detail, Enum):
        detail = detail.value
    if isinstance(detail, dict):
        code = detail.get("code")
        code = code.value if isinstance(code, Enum) else code
        reason = detail.get("reason")
        return (str(code) if code else None, str(reason) if reason else None)
    if isinstance(detail, str):
        if detail.isupper() and " " not in detail:
            return detail, None
        if detail == HTTPStatus(status).phrase:
            return None, None
        return None, detail
    return None, None


_HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _allowed_methods(request: Request) -> str | None:
    """Every method the path answers to, as documented (Starlette names only the first route's:
    with one route per method, `Allow` would list one of them)."""
    for template, item in request.app.openapi().get("paths", {}).items():
        pattern = "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, request.url.path):
            return ", ".join(sorted(m.upper() for m in item if m in _HTTP_METHODS))
    return None


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, detail = _code_and_detail(exc.status_code, exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return problem_response(request.url.path, exc.status_code, code, detail, headers=headers)


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request.url.path,
        exc.status_code,
        exc.code,
        exc.detail,
        headers=exc.headers,
        extra=exc.extra,
    )


def clean_validation_errors(errors: Any) -> list[dict[str, Any]]:
    # Never echo what was sent back (`input` may be a password); keep where and why.
    cleaned = []
    for error in errors:
        cleaned.append(
            {
                "loc": [str(part) for part in error.get("loc", ())],
                "msg": str(error.get("msg", "")),
                "type": str(error.get("type", "")),
            }
        )
    return cleaned


def validation_detail(errors: list[dict[str, Any]]) -> str:
    summary = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5])
    return f"Invalid request: {summary}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = clean_validation_errors(exc.errors())
    return problem_response(
        request.url.path, 422, "VALIDATION_ERROR", validation_detail(errors), errors=errors
    )


def is_database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached (as opposed to a bug in a query)."""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    # asyncpg raises plain OSError subclasses when it cannot connect at all.
    return isinstance(exc, ConnectionError | TimeoutError) or (
        isinstance(exc, OSError) and exc.errno is not None
    )


# SQLSTATEs of PostgreSQL for a table / a column that does not exist.
_UNDEFINED_TABLE_OR_COLUMN = frozenset({"42P01", "42703"})


def is_schema_behind(exc: BaseException) -> bool:
    """A table or column the code needs does not exist: migrations were not applied."""
    orig = getattr(exc, "orig", None)
    if isinstance(exc, sa_exc.ProgrammingError):
        return getattr(orig, "sqlstate", None) in _UNDEFINED_TABLE_OR_COLUMN
    if isinstance(exc, sa_exc.OperationalError) and orig is not None:
        return str(orig).startswith(("no such table", "no such column"))  # SQLite
    return False


async def log_database_error(app: Any, exc: BaseException) -> None:
    """The one ERROR line for a database that refused a request: a schema behind the code
    (naming the pending migrations and the command), or a database that cannot be reached.
    Class names only: the message of a driver error may hold SQL and parameters."""
    if not is_schema_behind(exc):
        logger.error("database unavailable: {}", type(exc).__name__)
        return
    logger.error("database schema is behind the code: {}", await _schema_description(app))


async def _schema_description(app: Any) -> str:
    from app.migrations import MIGRATE_COMMAND

    fallback = f"a table or column is missing; run `{MIGRATE_COMMAND}`"
    state = getattr(app, "state", None)
    inspector = getattr(state, "schema", None)
    database = getattr(state, "database", None)
    if inspector is None or database is None:
        return fallback
    try:
        status = await asyncio.wait_for(inspector.check(database), 3)
    except Exception:
        return fallback
    if status.at_head:
        return (
            "a table or column is missing although every migration is applied "
            "(was the database changed by hand?)"
        )
    return str(status.describe())


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    await log_database_error(request.app, exc)
    return problem_response(
        request.url.path, 503, "SERVICE_UNAVAILABLE", headers={"Retry-After": "5"}
    )


async def _programming_error(request: Request, exc: Exception) -> JSONResponse:
    if is_schema_behind(exc):
        return await _database_unavailable(request, exc)
    raise exc  # a bug in a query: the middleware logs it and answers 500


def internal_error_response(request_path: str) -> JSONResponse:
    return problem_response(request_path, 500, "INTERNAL_ERROR")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for exc_class in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(exc_class, _database_unavailable)
    app.add_exception_handler(ConnectionError, _database_unavailable)
    app.add_exception_handler(sa_exc.ProgrammingError, _programming_error)
