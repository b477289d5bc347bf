"""loguru is the one sink: stdlib logging is routed into it, every line carries the request id.

Secrets never reach a line: the patcher below scrubs bearer tokens, JWTs, password and token
fields and the signing key from every message, and escapes CR/LF so user input cannot forge a
line.
"""

from __future__ import annotations

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


def redact(text: str) -> str:
    for value in _secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    # One event, one line: CR/LF from user input are shown escaped, never obeyed.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _patch(record: Record) -> None:
    record["message"] = redact(record["message"])
    extra = record["extra"]
    if extra.get("request_id") is None:
        extra["request_id"] = request_id_var.get()
    user_id = user_id_var.get()
    if user_id is not None:
        extra.setdefault("user_id", user_id)
    for key, value in list(extra.items()):
        if isinstance(value, str):
            extra[key] = redact(value)


def _json_sink(message: Any) -> None:
    record = message.record
    payload: dict[str, Any] = {
        "time": record["time"].isoformat(),
        "level": record["level"].name,
        "logger": record["name"],
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


def _pretty_formatter(record: Record) -> str:
    extras = {
        k: v for k, v in record["extra"].items() if k not in _SHOWN_IN_MESSAGE and v is not None
    }
    suffix = " " + " ".join(f"{k}={v}" for k, v in extras.items()) if extras else ""
    rid = record["extra"].get("request_id") or "-"
    return (
        "<green>{time:HH:mm:ss.SSS}</green> <level>{level: <8}</level> "
        f"<cyan>{rid}</cyan> "
        "<level>{message}</level>"
        + suffix.replace("{", "{{").replace("}", "}}").replace("<", r"\<")
        + "\n{exception}"
    )


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
        logger.opt(depth=depth, exception=record.exc_info).log(level, record.getMessage())


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
    if settings.secret_key is not None:
        register_secret(settings.secret_key.get_secret_value())
