"""Per-request context, visible to every log line written while serving the request."""

from __future__ import annotations

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)


def set_user_id(user_id: object) -> None:
    """Called by the authenticating module so the access line can name the user."""
    user_id_var.set(str(user_id))
