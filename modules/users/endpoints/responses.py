"""How our routes document their failures in OpenAPI."""

from __future__ import annotations

from typing import Any

from app.errors import CODE_DETAILS, ProblemError
from modules.users.passwords import PasswordPolicy
from modules.users.schemas import PASSWORD_MIN_LENGTH

# A refused password as the default rule words it (the real message, not a made-up one).
SHORT_PASSWORD_REASON = str(PasswordPolicy(min_length=PASSWORD_MIN_LENGTH).length_problem(""))

Documented = type[ProblemError] | str | tuple[str, str]


def problem_examples(
    status_code: int, *errors: Documented, extra: dict[str, Any] | None = None
) -> dict[int | str, Any]:
    """Documented failures in fastapi-users' style; app/openapi.py turns them into problems.

    A bare code stands for an error whose detail app/errors.py knows (CODE_DETAILS); a
    `(code, reason)` pair for one whose detail is the reason; `extra` for extension members
    (taken from the error class when it has them).
    """
    examples: dict[str, Any] = {}
    for error in errors:
        if isinstance(error, str):
            code, detail = error, CODE_DETAILS[error]
            value: dict[str, Any] = {"detail": error}
        elif isinstance(error, tuple):
            code, detail = error
            value = {"detail": {"code": code, "reason": detail}}
        else:
            code, detail = error.code, error.detail or error.code
            value = {"detail": {"code": code, "reason": detail}}
        members = extra if extra is not None else getattr(error, "extra", None)
        if members:
            value["extra"] = members
        examples[code] = {"summary": detail, "value": value}
    return {
        status_code: {
            "description": " / ".join(e["summary"] for e in examples.values()),
            "content": {"application/json": {"examples": examples}},
        }
    }
