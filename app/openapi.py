"""The OpenAPI schema documents the errors the app really returns: problem+json everywhere."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.errors import CODE_DETAILS, DEFAULT_CODES, PROBLEM_MEDIA_TYPE, ProblemDetail

PROBLEM_REF = "#/components/schemas/ProblemDetail"
_METHODS = {"get", "put", "post", "delete", "patch"}


def _problem_example(status: int, code: str, detail: str | None = None) -> dict[str, Any]:
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or CODE_DETAILS.get(code, HTTPStatus(status).phrase),
        "instance": "/path",
        "code": code,
        "request_id": "3f1c2a9e8b7d4c6f",
    }


def _as_problem_examples(status: int, content: dict[str, Any]) -> dict[str, Any]:
    """Turn fastapi-users' `{"detail": CODE}` examples into problem documents."""
    examples: dict[str, Any] = {}
    for media in content.values():
        for name, example in (media.get("examples") or {}).items():
            value = example.get("value", {})
            detail = value.get("detail") if isinstance(value, dict) else None
            if isinstance(detail, dict):
                code, reason = str(detail.get("code")), detail.get("reason")
            else:
                code, reason = str(detail or name), None
            examples[name] = {
                "summary": example.get("summary", name),
                "value": _problem_example(status, code, reason),
            }
    return examples


def _problem_response(
    status: int, description: str, examples: dict[str, Any] | None = None
) -> dict[str, Any]:
    code = DEFAULT_CODES.get(status, HTTPStatus(status).name)
    media: dict[str, Any] = {"schema": {"$ref": PROBLEM_REF}}
    media["examples"] = examples or {code: {"value": _problem_example(status, code)}}
    response: dict[str, Any] = {"description": description, "content": {PROBLEM_MEDIA_TYPE: media}}
    if status == 401:
        response["headers"] = {
            "WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}
        }
    if status in (429, 503):
        response["headers"] = {
            "Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait."}
        }
    return response


def _document_operation(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status_text in list(responses):
        if not status_text.isdigit() or int(status_text) < 400:
            continue
        status = int(status_text)
        original = responses[status_text]
        examples = _as_problem_examples(status, original.get("content") or {})
        responses[status_text] = _problem_response(
            status, original.get("description") or HTTPStatus(status).phrase, examples or None
        )
        if status == 422:
            responses[status_text]["description"] = "Validation error (`errors` lists each)."

    def add(status: int, description: str) -> None:
        responses.setdefault(str(status), _problem_response(status, description))

    has_input = bool(operation.get("parameters") or operation.get("requestBody"))
    if has_input:
        add(422, "Validation error (`errors` lists each).")
    if operation.get("requestBody"):
        add(400, "The request body could not be parsed.")
        add(413, "The request body is too large.")
    if operation.get("security"):
        add(401, "Missing, invalid or expired token.")
    if re.search(r"\{[^}]+\}", path):
        add(404, "Not found.")
    add(500, "Unexpected error (generic body; details are in the log).")
    add(503, "A service the request needs (the database) is unavailable.")


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ProblemDetail"] = ProblemDetail.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS:
                _document_operation(path, operation)
    for unused in ("HTTPValidationError", "ValidationError", "ErrorModel"):
        components.pop(unused, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
