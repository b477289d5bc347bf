"""The OpenAPI schema documents what the app really does: problem+json everywhere, every code it
answers in an enum, clean operation ids, statuses only where they can happen.

The rules here apply to every route of every module, including routes added later:
- operation id: `operation_id(route)`, from the route's name (see there);
- a 422 is documented only where input can fail validation (a body, a query or header
  parameter, a path parameter that is not a plain string); 400 (an undecodable body) and 413
  only with a body;
- problem examples show the operation's own path, a real title and real validation errors.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

from fastapi import FastAPI, routing
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

from app.errors import (
    CODE_DETAILS,
    PROBLEM_MEDIA_TYPE,
    ProblemDetail,
    clean_validation_errors,
    default_code,
    known_codes,
    problem_title,
    validation_detail,
)

PROBLEM_REF = "#/components/schemas/ProblemDetail"
_METHODS = {"get", "put", "post", "delete", "patch"}
MAX_OPERATION_ID = 32


def operation_id(route: APIRoute) -> str:
    """One rule for every route: the action part of the route's name (after the last `:` or
    `.`), in lowerCamelCase. `auth:jwt.login` → `login`, `users:list_sessions` →
    `listSessions`; a route without `name=` is named after its function (`metrics`).

    Name a route for what it does, once: tests/app/test_openapi_contract.py checks that every
    id is unique, at most 32 characters and carries no HTTP-method suffix.
    """
    action = re.split(r"[:.]", route.name)[-1]
    words = [w for w in re.split(r"[^0-9A-Za-z]+|_", action) if w]
    if not words:
        return route.name
    return words[0][:1].lower() + words[0][1:] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _problem_example(
    path: str,
    status: int,
    code: str,
    detail: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    example: dict[str, Any] = {
        "type": "about:blank",
        "title": problem_title(status),
        "status": status,
        "detail": detail or CODE_DETAILS.get(code, problem_title(status)),
        "instance": path,
        "code": code,
        "request_id": "3f1c2a9e8b7d4c6f",
    }
    if errors is not None:
        example["errors"] = errors
    return example


def _as_problem_examples(path: str, status: int, content: dict[str, Any]) -> dict[str, Any]:
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
            problem = _problem_example(path, status, code, reason)
            if isinstance(value, dict):
                problem.update(value.get("extra") or {})  # extension members (login's OAuth2)
            examples[name] = {"summary": example.get("summary", name), "value": problem}
    return examples


def _validation_example(path: str, route: APIRoute | None) -> dict[str, Any]:
    """A 422 as the app answers it: pydantic's own messages for this operation's input."""
    raw: list[dict[str, Any]] = []
    if route is not None and route.body_field is not None:
        adapter: TypeAdapter[Any] = TypeAdapter(route.body_field.field_info.annotation or Any)
        try:
            adapter.validate_python({})
        except ValidationError as exc:
            raw = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
    if not raw and route is not None:
        for param in route.dependant.query_params + route.dependant.path_params:
            try:
                TypeAdapter(param.field_info.annotation or Any).validate_python("?")
            except ValidationError as exc:
                where = "query" if param in route.dependant.query_params else "path"
                raw = [{**e, "loc": (where, param.alias, *e["loc"])} for e in exc.errors()]
                break
    errors = clean_validation_errors(raw)
    example = _problem_example(path, 422, "VALIDATION_ERROR", validation_detail(errors), errors)
    return {"VALIDATION_ERROR": {"summary": "Invalid input", "value": example}}


def _problem_response(
    path: str, status: int, description: str, examples: dict[str, Any] | None = None
) -> dict[str, Any]:
    code = default_code(status)
    media: dict[str, Any] = {"schema": {"$ref": PROBLEM_REF}}
    media["examples"] = examples or {code: {"value": _problem_example(path, status, code)}}
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


def _can_fail_validation(operation: dict[str, Any]) -> bool:
    if operation.get("requestBody"):
        return True
    for parameter in operation.get("parameters") or []:
        if parameter.get("in") != "path":
            return True
        schema = parameter.get("schema") or {}
        # A bare string path segment takes anything: an unknown one is a 404, never a 422.
        if schema.get("type") != "string" or set(schema) - {"type", "title", "description"}:
            return True
    return False


def _document_operation(path: str, operation: dict[str, Any], route: APIRoute | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status_text in list(responses):
        if not status_text.isdigit() or int(status_text) < 400:
            continue
        status = int(status_text)
        original = responses[status_text]
        if status == 422:
            if _can_fail_validation(operation):
                responses[status_text] = _problem_response(
                    path,
                    422,
                    "Validation error (`errors` lists each).",
                    _validation_example(path, route),
                )
            else:
                del responses[status_text]  # FastAPI's default, unreachable here
            continue
        examples = _as_problem_examples(path, status, original.get("content") or {})
        responses[status_text] = _problem_response(
            path, status, original.get("description") or problem_title(status), examples or None
        )

    def add(status: int, description: str) -> None:
        responses.setdefault(str(status), _problem_response(path, status, description))

    if _can_fail_validation(operation) and "422" not in responses:
        responses["422"] = _problem_response(
            path, 422, "Validation error (`errors` lists each).", _validation_example(path, route)
        )
    if operation.get("requestBody"):
        _add_unreadable_body(path, responses)
        add(413, "The request body is too large.")
    if operation.get("security"):
        add(401, "Missing, invalid or expired token.")
    if re.search(r"\{[^}]+\}", path):
        add(404, "Not found.")
    add(500, "Unexpected error (generic body; details are in the log).")
    add(503, "A service the request needs (the database) is unavailable.")


# What FastAPI answers for a body it cannot decode at all (e.g. bytes that are not UTF-8).
UNREADABLE_BODY = "There was an error parsing the body"


def _add_unreadable_body(path: str, responses: dict[str, Any]) -> None:
    """Any body can be unreadable: a 400 beside the route's own 400s, if it has some."""
    example: dict[str, Any] = {
        "summary": "The body could not be decoded.",
        "value": _problem_example(path, 400, "BAD_REQUEST", UNREADABLE_BODY),
    }
    if "400" not in responses:
        responses["400"] = _problem_response(
            path, 400, "The request body could not be decoded.", {"BAD_REQUEST": example}
        )
        return
    media = responses["400"]["content"][PROBLEM_MEDIA_TYPE]
    media.setdefault("examples", {}).setdefault("BAD_REQUEST", example)


def _documented_codes(schema: dict[str, Any]) -> set[str]:
    codes: set[str] = set()
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for response in (operation.get("responses") or {}).values():
                media = (response.get("content") or {}).get(PROBLEM_MEDIA_TYPE) or {}
                for example in (media.get("examples") or {}).values():
                    codes.add(str(example["value"]["code"]))
    return codes


def _problem_schemas(codes: set[str]) -> dict[str, Any]:
    found = ProblemDetail.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = found.pop("$defs", {})
    found["properties"]["code"]["enum"] = sorted(codes)
    found["properties"]["code"]["description"] = (
        "What went wrong, for programs: one of these values (a newer server may add more)."
    )
    schemas["ProblemDetail"] = found
    return schemas


def _untitle_inline_responses(schema: dict[str, Any]) -> None:
    """FastAPI titles an inline response schema after the operation ("Response Listsessions"):
    generators would make a type of that name. The items' own model names what it is."""
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            for response in (operation.get("responses") or {}).values():
                for media in (response.get("content") or {}).values():
                    inline = media.get("schema") or {}
                    if str(inline.get("title", "")).startswith("Response "):
                        del inline["title"]


def _api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route as mounted (FastAPI ≥ 0.16x keeps included routers as lazy entries:
    `iter_route_contexts` yields each route with its effective path)."""
    for context in routing.iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield cast(APIRoute, context)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    routes = {
        (method.lower(), route.path_format): route
        for route in _api_routes(app)
        for method in route.methods or ()
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method in _METHODS:
                _document_operation(path, operation, routes.get((method, path)))
    _untitle_inline_responses(schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ErrorModel"):
        components.pop(unused, None)
    components.update(_problem_schemas(known_codes() | _documented_codes(schema)))
    return schema


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
