"""Errors of the users module, as problem documents (see app/errors.py)."""

from __future__ import annotations

from app.errors import ProblemError


class UsersError(ProblemError):
    """Base of the users module's client-visible errors."""
