"""The contract clients are generated from: rules that hold for every route, present and future."""

from __future__ import annotations

import re
from typing import Any

import httpx

from app.errors import ProblemError, known_codes
from tests.helpers import PASSWORD, bearer, login, register

METHODS = {"get", "put", "post", "delete", "patch"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


async def test_every_operation_id_follows_the_rule(client: httpx.AsyncClient) -> None:
    """Unique, short, camelCase, no HTTP-method suffix (FastAPI's default would be
    `auth_jwt_login_auth_jwt_login_post`). Fix a failure with the route's `name=`."""
    schema = (await client.get("/openapi.json")).json()
    ids = [operation.get("operationId", "") for _, _, operation in _operations(schema)]
    for method, path, operation in _operations(schema):
        found = operation.get("operationId", "")
        where = f"{method.upper()} {path}: {found!r}"
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", found), where
        assert len(found) <= 32, where
        assert not re.search(r"(Get|Post|Put|Patch|Delete|_get|_post)$", found), where
        assert ids.count(found) == 1, f"{where} is used {ids.count(found)} times"
    assert {"register", "login", "refresh", "logout", "listSessions", "forgotPassword"} <= set(ids)


async def test_every_body_has_a_named_model(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    assert not [name for name in components if name.startswith("Body_")]
    for method, path, operation in _operations(schema):
        for media in (operation.get("requestBody") or {}).get("content", {}).values():
            assert "$ref" in media["schema"], f"{method} {path}: inline request body"
        for status, response in operation["responses"].items():
            for media in (response.get("content") or {}).values():
                title = str(media["schema"].get("title", ""))
                assert not title.startswith("Response "), f"{method} {path} {status}: {title}"
            if status in ("202", "204"):
                assert "content" not in response, f"{method} {path} {status} has a body"


async def test_request_schemas_hold_only_what_a_client_sends(client: httpx.AsyncClient) -> None:
    components = (await client.get("/openapi.json")).json()["components"]["schemas"]
    user_create = components["UserCreate"]
    assert set(user_create["properties"]) == {"email", "password"}
    assert set(user_create["required"]) == {"email", "password"}
    form = components["LoginForm"]
    assert set(form["properties"]) == {"username", "password"}
    assert set(form["required"]) == {"username", "password"}
    # What an old client still sends is ignored: never stored, never a 422.
    sent = {"email": "ada@example.com", "password": PASSWORD, "is_superuser": True}
    created = await client.post("/auth/register", json=sent)
    assert created.status_code == 201, created.text
    assert created.json()["is_superuser"] is False
    # OAuth2 clients' extra form fields (Swagger sends these) are accepted and ignored.
    answer = await client.post(
        "/auth/jwt/login",
        data={"grant_type": "password", "username": sent["email"], "password": PASSWORD},
    )
    assert answer.status_code == 200, answer.text


async def test_problem_code_is_an_enum_of_every_code(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    problem = schema["components"]["schemas"]["ProblemDetail"]
    enum = set(problem["properties"]["code"]["enum"])
    pending: list[type[ProblemError]] = [ProblemError]
    while pending:  # every module's errors, collected (not a hand list)
        cls = pending.pop()
        assert cls.code in enum, cls
        pending.extend(cls.__subclasses__())
    assert known_codes() <= enum
    for method, path, operation in _operations(schema):
        for status, response in operation["responses"].items():
            media = (response.get("content") or {}).get("application/problem+json")
            for name, example in ((media or {}).get("examples") or {}).items():
                value = example["value"]
                assert value["code"] in enum, (method, path, name)
                assert value["instance"] == path, (method, path, name)
                assert value["status"] == int(status)
    items = problem["properties"]["errors"]["anyOf"][0]["items"]
    assert items == {"$ref": "#/components/schemas/ValidationIssue"}
    issue = schema["components"]["schemas"]["ValidationIssue"]
    assert set(issue["required"]) == {"loc", "msg", "type"}


async def test_examples_are_what_the_api_answers(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    register_op = schema["paths"]["/auth/register"]["post"]["responses"]
    documented = register_op["400"]["content"]["application/problem+json"]["examples"]
    real = await client.post("/auth/register", json={"email": "ada@example.com", "password": "x"})
    assert real.status_code == 400
    assert documented["REGISTER_INVALID_PASSWORD"]["value"]["detail"] == real.json()["detail"]
    example_422 = register_op["422"]["content"]["application/problem+json"]["examples"]
    real_422 = (await client.post("/auth/register", json={})).json()
    expected = example_422["VALIDATION_ERROR"]["value"]
    for key in ("title", "detail", "errors", "code", "instance"):
        assert expected[key] == real_422[key], key


async def test_documented_statuses_are_reachable(client: httpx.AsyncClient) -> None:
    """A 422 only where input can fail validation; a 400 where a body can be sent."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "422" not in paths["/users/{id}"]["get"]["responses"]
    assert "422" not in paths["/users/{id}"]["delete"]["responses"]
    # Any body can be undecodable (not UTF-8): a 400, documented with FastAPI's real words.
    refresh_400 = paths["/auth/jwt/refresh"]["post"]["responses"]["400"]
    example = refresh_400["content"]["application/problem+json"]["examples"]["BAD_REQUEST"]
    garbled = await client.post(
        "/auth/jwt/refresh",
        content=b'{"refresh_token": "\xff"}',
        headers={"content-type": "application/json"},
    )
    assert garbled.status_code == 400
    assert garbled.json()["detail"] == example["value"]["detail"]
    assert garbled.json()["code"] == example["value"]["code"] == "BAD_REQUEST"
    await register(client, "root@example.com")
    token = (await login(client, "root@example.com"))["access_token"]
    # A non-UUID id is a 404 (as documented), never a 422.
    answer = await client.get("/users/not-a-uuid", headers=bearer(token))
    assert answer.status_code in (403, 404)
    # Empty answers are empty, as documented (no `null`).
    asked = await client.post("/auth/forgot-password", json={"email": "root@example.com"})
    assert (asked.status_code, asked.content) == (202, b"")
    assert "content-type" not in asked.headers


async def test_a_failed_login_says_why_in_oauth2_terms(client: httpx.AsyncClient) -> None:
    """Swagger's Authorize dialog shows `error_description` (and nothing of a problem)."""
    await register(client, "ada@example.com")
    answer = await client.post(
        "/auth/jwt/login", data={"username": "ada@example.com", "password": "wrong password"}
    )
    body = answer.json()
    assert answer.status_code == 400
    assert body["code"] == "LOGIN_BAD_CREDENTIALS"
    assert body["error"] == "invalid_grant"
    assert body["error_description"] == body["detail"]
    # Past the failure limit the refusal is a 429, which says why the same way.
    for _ in range(10):
        answer = await client.post(
            "/auth/jwt/login", data={"username": "ada@example.com", "password": "wrong again"}
        )
        if answer.status_code == 429:
            break
    body = answer.json()
    assert (answer.status_code, body["code"]) == (429, "RATE_LIMITED"), body
    assert body["error"] == "invalid_request"
    assert body["error_description"] == body["detail"]


async def test_tags_follow_a_users_path(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    tags = [tag["name"] for tag in schema["tags"]]
    assert tags[:4] == ["auth", "recovery", "verification", "users"]
    assert all(tag.get("description") for tag in schema["tags"])
    used = {tag for _, _, operation in _operations(schema) for tag in operation.get("tags", [])}
    assert used <= set(tags), (
        f"tags without a description: {sorted(used - set(tags))}; a module declares its tags "
        "(name: description) in `Module(tags=...)`, the app's own in app/factory.py"
    )
    order = list(schema["paths"])
    for before, after in [
        ("/auth/register", "/auth/jwt/login"),
        ("/auth/jwt/login", "/auth/jwt/refresh"),
        ("/auth/jwt/refresh", "/auth/jwt/logout"),
        ("/auth/jwt/logout", "/auth/jwt/logout-all"),
        ("/auth/forgot-password", "/auth/reset-password"),
        ("/auth/request-verify-token", "/auth/verify"),
    ]:
        assert order.index(before) < order.index(after), (before, after)
