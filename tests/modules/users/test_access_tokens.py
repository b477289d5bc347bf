"""Access tokens are checked fully: forged, altered, expired or foreign tokens all get 401.

Each bad token is built from the claims of a real, live token with one thing changed, and a
control token re-signed the same way is accepted, so each 401 is caused by that one change.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from tests.conftest import TEST_SECRET
from tests.helpers import assert_problem, bearer, login, register
from tests.mail import token_in, wait_for_mail

EMAIL = "ada@example.com"


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def sign(claims: dict[str, Any], key: str = TEST_SECRET, **kwargs: Any) -> str:
    return jwt.encode(claims, key, algorithm=kwargs.pop("algorithm", "HS256"), **kwargs)


async def assert_rejected(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/users/me", headers=bearer(token))
    assert_problem(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.fixture
async def live_token(client: httpx.AsyncClient) -> str:
    await register(client, EMAIL)
    return str((await login(client, EMAIL))["access_token"])


async def test_a_token_re_signed_with_the_right_key_and_claims_is_accepted(
    client: httpx.AsyncClient, live_token: str
) -> None:
    """The control for every test below: the crafting itself is sound."""
    token = sign(claims_of(live_token), headers={"typ": "at+jwt"})
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 200


def _none_alg(claims: dict[str, Any]) -> str:
    return f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(claims)}."


def _expired(claims: dict[str, Any]) -> str:
    now = int(time.time())
    return sign({**claims, "iat": now - 120, "exp": now - 60})


CHANGES: dict[str, Callable[[dict[str, Any]], str]] = {
    "alg none": _none_alg,
    "alg none, signature kept": lambda c: _none_alg(c) + "c2lnbmF0dXJl",
    "HS512 with the right key": lambda c: sign(c, algorithm="HS512"),
    "HS384 with the right key": lambda c: sign(c, algorithm="HS384"),
    "wrong key": lambda c: sign(c, "another-secret-key-of-sufficient-length-0123456789"),
    "expired": _expired,
    "not yet valid (nbf)": lambda c: sign({**c, "nbf": int(time.time()) + 300}),
    "wrong audience": lambda c: sign({**c, "aud": "gatehouse:other"}),
    "fastapi-users' default audience": lambda c: sign({**c, "aud": ["fastapi-users:auth"]}),
    "wrong issuer": lambda c: sign({**c, "iss": "someone-else"}),
    "no issuer": lambda c: sign({k: v for k, v in c.items() if k != "iss"}),
    "no expiry": lambda c: sign({k: v for k, v in c.items() if k != "exp"}),
    "no session id": lambda c: sign({k: v for k, v in c.items() if k != "sid"}),
    "unknown session id": lambda c: sign({**c, "sid": "00000000-0000-4000-8000-000000000000"}),
    "not an access token type": lambda c: sign({**c, "typ": "refresh"}),
    "no type": lambda c: sign({k: v for k, v in c.items() if k != "typ"}),
}


@pytest.mark.parametrize("change", list(CHANGES))
# The test key is long enough for HS256, not for HS384/HS512: irrelevant to these forgeries.
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_altered_tokens_are_rejected(
    client: httpx.AsyncClient, live_token: str, change: str
) -> None:
    await assert_rejected(client, CHANGES[change](claims_of(live_token)))


async def test_tampered_payload_with_the_original_signature_is_rejected(
    client: httpx.AsyncClient, live_token: str
) -> None:
    other = await register(client, "eve@example.com")
    header, _, signature = live_token.split(".")
    forged = _b64({**claims_of(live_token), "sub": other["id"]})
    await assert_rejected(client, f"{header}.{forged}.{signature}")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    await assert_rejected(client, f"{header}.{live_token.split('.')[1]}.{flipped}")


async def test_key_headers_are_never_followed(client: httpx.AsyncClient, live_token: str) -> None:
    attacker_key = "attacker-chosen-key-that-is-long-enough-0123456789"
    jwk = {"kty": "oct", "k": base64.urlsafe_b64encode(attacker_key.encode()).decode()}
    await assert_rejected(
        client, sign(claims_of(live_token), attacker_key, headers={"jwk": jwk, "kid": "x"})
    )
    with socket.socket() as listener:  # a key URL on loopback that must never be fetched
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/keys"
        for header in ("jku", "x5u"):
            await assert_rejected(
                client, sign(claims_of(live_token), attacker_key, headers={header: url})
            )
        with pytest.raises(BlockingIOError):
            listener.accept()


async def test_reset_and_verify_tokens_are_not_access_tokens(
    app: FastAPI, client: httpx.AsyncClient, live_token: str
) -> None:
    assert (await client.post("/auth/forgot-password", json={"email": EMAIL})).status_code == 202
    reset_token = token_in(await wait_for_mail(app, EMAIL, "Reset"))
    await assert_rejected(client, reset_token)

    verify = await client.post("/auth/request-verify-token", json={"email": EMAIL})
    assert verify.status_code == 202
    verify_token = token_in(await wait_for_mail(app, EMAIL, "Confirm"))
    assert verify_token != reset_token
    await assert_rejected(client, verify_token)


async def test_a_refresh_token_is_not_a_bearer_token(client: httpx.AsyncClient) -> None:
    await register(client, EMAIL)
    pair = await login(client, EMAIL)
    await assert_rejected(client, pair["refresh_token"])


async def test_tokens_in_the_query_string_are_ignored(
    client: httpx.AsyncClient, live_token: str
) -> None:
    for name in ("access_token", "token"):
        response = await client.get("/users/me", params={name: live_token})
        assert_problem(response, 401, "UNAUTHORIZED")
    assert (await client.get("/users/me", headers=bearer(live_token))).status_code == 200
