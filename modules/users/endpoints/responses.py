"""How our routes document their failures in OpenAPI."""

from __future__ import annotations

from typing import Any

from app.errors import CODE_DETAILS, ProblemError


def problem_examples(status_code: int, *errors: type[ProblemError] | str) -> dict[int | str, Any]:
    """Documented failures in fastapi-users' style; app/openapi.py turns them into problems.

    A bare code stands for an error whose detail app/errors.py knows (CODE_DETAILS).
    """
    examples: dict[str, Any] = {}
    for error in errors:
        if isinstance(error, str):
            examples[error] = {"summary": CODE_DETAILS[error], "value": {"detail": error}}
        else:
            detail = error.detail or error.code
            examples[error.code] = {
                "summary": detail,
                "value": {"detail": {"code": error.code, "reason": detail}},
            }
    return {
        status_code: {
            "description": " / ".join(e["summary"] for e in examples.values()),
            "content": {"application/json": {"examples": examples}},
        }
    }
