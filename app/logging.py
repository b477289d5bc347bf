"""loguru is the one sink: stdlib logging is routed into it, every line carries the request id.

Secrets never reach a line: the patcher below scrubs bearer tokens, JWTs, password and token
fields, password hashes, the values a database error quotes and the signing key from every
message and traceback, and escapes every control character (C0, C1, DEL, line separators, bidi
overrides) so user input can neither forge a line nor drive the terminal that shows it.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from loguru import logger

from app.context import request_id_var, user_id_var

if TYPE_CHECKING:
    from loguru import Record

    from app.settings import CoreSettings

REDACTED = "[REDACTED]"

# Order matters: the most specific patterns first.
_REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    # Password hashes (argon2 PHC strings, bcrypt's modular crypt format), wherever they appear:
    # a database error's parameters or PostgreSQL's "Failing row contains (…)".
    (re.compile(r"\$argon2(?:id|i|d)\$[A-Za-z0-9+/=$,.]+"), REDACTED),
    (re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{53}"), REDACTED),
    # PostgreSQL quotes the offending values in its DETAIL: "Key (email)=(ada@…) already exists".
    (re.compile(r"(\bKey \([^)]*\)=).*"), rf"\1({REDACTED})"),
    (re.compile(r"(\bFailing row contains )\(.*\)"), rf"\1({REDACTED})"),
    # Authorization header values, in any form they may be printed.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]+=*"), rf"\1 {REDACTED}"),
    # Anything shaped like a JWT.
    (re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"), REDACTED),
    # key=value and "key": "value" for secret-bearing keys (query strings, forms, JSON, reprs).
    (
        re.compile(
            r"""(?ix)
            (["']?\b(?:[a-z_]*password|[a-z_]*token|secret(?:_key)?|authorization|api_key)\b["']?
             \s*[:=]\s*)
            (?:"[^"]*"|'[^']*'|[^\s&,;)}\]]+)
            """
        ),
        rf"\1{REDACTED}",
    ),
]

_secret_values: set[str] = set()


def register_secret(value: str) -> None:
    """Scrub this exact value from every line (the signing key, SMTP passwords, …)."""
    if len(value) >= 8:
        _secret_values.add(value)
        _redact_short.cache_clear()  # cached answers did not know this value


# C0, DEL and C1 controls, the Unicode line/paragraph separators and the bidi overrides: none is
# printed raw. A raw ESC lets a path repaint the developer's terminal; CR/LF forge lines.
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED_CONTROLS = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _escape_control(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_CONTROLS.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    return _CONTROLS.sub(_escape_control, text)


def redact(text: str) -> str:
    for value in _secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    # One event, one line, and nothing a terminal obeys: controls are shown escaped.
    return escape_controls(text)


# Paths and methods repeat: their redacted form is remembered (bounded), so the access line
# costs no regex work for a path seen before. Cleared when a secret is registered.
_redact_short = functools.lru_cache(maxsize=4096)(redact)
_SHORT = 256
# A record whose message and string extras were redacted when it was made (`access_line`).
_PREREDACTED = "_preredacted"


def _redacted(text: str) -> str:
    return _redact_short(text) if len(text) <= _SHORT else redact(text)


def access_line(method: str, path: str, status: int, seconds: float) -> None:
    """The one line per request (`app/middleware.py`): redacted here, from cached parts, so
    the patcher has nothing left to do for it."""
    method, path = _redacted(method), _redacted(path)
    duration_ms = round(seconds * 1000, 2)
    logger.bind(
        _preredacted=True, method=method, path=path, status=status, duration_ms=duration_ms
    ).info(f"{method} {path} {status} {duration_ms}ms")


def _patch(record: Record) -> None:
    extra = record["extra"]
    preredacted = extra.pop(_PREREDACTED, False)
    if not preredacted:
        record["message"] = redact(record["message"])
    if extra.get("request_id") is None:
        extra["request_id"] = request_id_var.get()
    user_id = user_id_var.get()
    if user_id is not None:
        extra.setdefault("user_id", user_id)
    if preredacted:
        return
    for key, value in list(extra.items()):
        if isinstance(value, str):
            extra[key] = redact(value)


def _json_sink(message: Any) -> None:
    record = message.record
    payload: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": record["name"],
        # Which worker process wrote it (`python -m app serve --workers N`).
        "pid": record["process"].id,
        "message": record["message"],
    }
    payload.update({k: v for k, v in record["extra"].items() if v is not None})
    if record["exception"] is not None:
        payload["exception"] = redact_multiline("".join(_format_exception(record)))
    sys.stderr.write(json.dumps(payload, default=str) + "\n")


def _format_exception(record: Record) -> list[str]:
    import traceback

    exc = record["exception"]
    assert exc is not None
    return traceback.format_exception(exc.type, exc.value, exc.traceback)


def redact_multiline(text: str) -> str:
    """Redact a traceback, keeping it readable (JSON escapes its newlines anyway)."""
    return "\n".join(redact(line) for line in text.splitlines())


# Already in the pretty line (the access line's message repeats them): not printed twice.
_SHOWN_IN_MESSAGE = {"request_id", "method", "path", "status", "duration_ms"}


def _literal(text: str) -> str:
    """Text placed in a loguru format string: no field, no colour markup."""
    return text.replace("{", "{{").replace("}", "}}").replace("<", r"\<")


def _pretty_formatter(record: Record) -> str:
    """A format string that is the same for every line of the same shape (loguru remembers
    the last 64 it parsed): values go in as `{extra[...]}` fields, never as literal text, but
    for extras that are not strings (their repr is escaped here)."""
    extra = record["extra"]
    parts = [
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> ",
        "<cyan>{extra[request_id]}</cyan> " if extra.get("request_id") else "<cyan>-</cyan> ",
        "<level>{message}</level>",
    ]
    for key, value in extra.items():
        if key in _SHOWN_IN_MESSAGE or value is None:
            continue
        if isinstance(value, str) and key.isidentifier():
            # Already redacted and escaped by the patcher.
            parts.append(f" {key}={{extra[{key}]}}")
        else:
            parts.append(_literal(f" {key}={escape_controls(str(value))}"))
    parts.append("\n")
    # The traceback is formatted here (not by loguru's "{exception}") so it is redacted like the
    # JSON sink's: a database error's text may quote parameters, hashes, user input.
    if record["exception"] is not None:
        parts.append(_literal(redact_multiline("".join(_format_exception(record))) + "\n"))
    return "".join(parts)


class InterceptHandler(logging.Handler):
    """Send stdlib logging records (uvicorn, sqlalchemy, alembic, fastapi_users) to loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        frame: FrameType | None = logging.currentframe()
        depth = 2
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        # The stdlib logger's name ("uvicorn.error", "alembic.runtime.migration"), not the
        # module loguru finds up the stack: the line says who logged it.
        name = record.name
        logger.patch(lambda r: r.__setitem__("name", name)).opt(
            depth=depth, exception=record.exc_info
        ).log(level, record.getMessage())


# uvicorn's own access log is replaced by ours (app/middleware.py), which knows the request id.
_SILENCED = ("uvicorn.access",)
_ROUTED = ("uvicorn", "uvicorn.error", "sqlalchemy", "alembic", "fastapi_users", "asyncio")


def setup_logging(settings: CoreSettings) -> None:
    logger.remove()
    logger.configure(patcher=_patch, extra={"request_id": None})
    if settings.effective_log_format == "json":
        logger.add(_json_sink, level=settings.log_level, backtrace=False, diagnose=False)
    else:
        logger.add(
            sys.stderr,
            level=settings.log_level,
            format=_pretty_formatter,
            backtrace=False,
            # diagnose=True would print local variables (passwords, tokens) in tracebacks.
            diagnose=False,
            colorize=None,
        )
    logging.basicConfig(handlers=[InterceptHandler()], level=settings.log_level, force=True)
    for name in _ROUTED:
        std = logging.getLogger(name)
        std.handlers = [InterceptHandler()]
        std.propagate = False
    for name in _SILENCED:
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = False
        logging.getLogger(name).disabled = True
    # SQLAlchemy's engine logger would print SQL and bound parameters: keep it at WARNING.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # Alembic says at INFO which of its plugins it set up and which dialect it uses, on every
    # start: noise. What a run applied is our own line (app/migrations.py); its warnings show.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if settings.secret_key is not None:
        register_secret(settings.secret_key.get_secret_value())
    if settings.metrics_token is not None:
        register_secret(settings.metrics_token.get_secret_value())
