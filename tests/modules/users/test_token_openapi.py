"""The OpenAPI schema tells the truth about the token routes."""

from __future__ import annotations

import httpx


async def test_token_routes_document_their_failures(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    refresh = paths["/auth/jwt/refresh"]["post"]
    assert "security" not in refresh  # public: the refresh token is the credential
    examples = refresh["responses"]["401"]["content"]["application/problem+json"]["examples"]
    assert set(examples) == {"REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"}

    login = paths["/auth/jwt/login"]["post"]
    assert "application/x-www-form-urlencoded" in login["requestBody"]["content"]
    assert "LOGIN_BAD_CREDENTIALS" in str(login["responses"]["400"])

    for path, method in [
        ("/auth/jwt/logout", "post"),
        ("/auth/jwt/logout-all", "post"),
        ("/users/me/sessions", "get"),
        ("/users/me/sessions/{session_id}", "delete"),
    ]:
        operation = paths[path][method]
        assert operation["security"] == [{"OAuth2PasswordBearer": []}], path
        assert "401" in operation["responses"], path
    assert "404" in paths["/users/me/sessions/{session_id}"]["delete"]["responses"]
    # fastapi-users' own auth router is replaced by ours, not mounted beside it.
    assert [p for p in paths if p.startswith("/auth/jwt/")] == [
        "/auth/jwt/login",
        "/auth/jwt/refresh",
        "/auth/jwt/logout",
        "/auth/jwt/logout-all",
    ]


async def test_the_session_list_documents_its_pages(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/openapi.json")).json()["paths"]["/users/me/sessions"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert parameters["limit"]["in"] == "query"
    assert parameters["limit"]["schema"]["maximum"] == 100
    assert parameters["limit"]["schema"]["default"] == 50
    assert parameters["cursor"]["in"] == "query"
    ok = listing["responses"]["200"]
    assert "Link" in ok["headers"]
    assert ok["content"]["application/json"]["schema"]["type"] == "array"
    assert "422" in listing["responses"]
