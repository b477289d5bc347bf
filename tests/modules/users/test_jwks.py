"""Access tokens other services verify: ES256 / EdDSA / RS256, the JWKS, rotation, alg confusion.

Each check is made as another service would make it: PyJWT over the keys fetched from
/.well-known/jwks.json, never Gatehouse's own verifying code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from app.settings import CoreSettings
from modules.users.signing_keys import verification_key
from tests.helpers import assert_problem, bearer, login, register
from tests.modules.users.apps import client_for, running_app
from tests.modules.users.keyfiles import key_file, new_key, public_pem, signing_with, write_key

EMAIL = "ada@example.com"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
PUBLIC_MEMBERS = {
    "EC": ("kty", "crv", "x", "y"),
    "OKP": ("kty", "crv", "x"),
    "RSA": ("kty", "n", "e"),
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data).encode())


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def verify_like_another_service(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """What a service holding only the JWKS does: the key by kid, its own algorithm only."""
    keys = jwt.PyJWKSet.from_dict(jwks)
    key = next(k for k in keys.keys if k.key_id == header_of(token)["kid"])
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=[key.algorithm_name],
        audience="gatehouse:access",
        issuer="gatehouse",
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    return claims


async def fetch_jwks(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/.well-known/jwks.json")  # no credentials: a public route
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def assert_rejected(client: httpx.AsyncClient, token: str) -> None:
    response = await client.get("/users/me", headers=bearer(token))
    assert_problem(response, 401, "UNAUTHORIZED")


async def test_an_es256_token_verifies_with_pyjwt_against_the_jwks_and_carries_roles_and_scope(
    settings: CoreSettings, tmp_path: Path
) -> None:
    users = signing_with(key_file(tmp_path, "current"))
    async with running_app(settings, users) as app, client_for(app) as client:
        account = await register(client, EMAIL)
        pair = await login(client, EMAIL)
        jwks = await fetch_jwks(client)
        assert len(jwks["keys"]) == 1
        (published,) = jwks["keys"]
        assert published["kty"] == "EC" and published["crv"] == "P-256"
        assert published["alg"] == "ES256" and published["use"] == "sig"

        header = header_of(pair["access_token"])
        assert header == {"alg": "ES256", "typ": "at+jwt", "kid": published["kid"]}
        claims = verify_like_another_service(pair["access_token"], jwks)
        assert claims["sub"] == account["id"]

        refreshed = await client.post(
            "/auth/jwt/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        token = refreshed.json()["access_token"]
        assert header_of(token)["kid"] == published["kid"]
        claims = verify_like_another_service(token, jwks)
        # No roles exist yet: the claims are there, empty (RFC 9068 §2.2.3 scope is a string).
        assert claims["roles"] == []
        assert claims["scope"] == ""
        assert claims["sub"] == account["id"]
        # Gatehouse itself accepts it too.
        assert (await client.get("/users/me", headers=bearer(token))).json()["id"] == account["id"]


@pytest.mark.parametrize(
    ("algorithm", "kty"), [("ES256", "EC"), ("EdDSA", "OKP"), ("RS256", "RSA")]
)
async def test_the_jwks_publishes_public_members_only(
    settings: CoreSettings, tmp_path: Path, algorithm: str, kty: str
) -> None:
    users = signing_with(key_file(tmp_path, "current", algorithm), algorithm)
    async with running_app(settings, users) as app, client_for(app) as client:
        response = await client.get("/.well-known/jwks.json")
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=300"
        (published,) = response.json()["keys"]
        assert published["kty"] == kty and published["alg"] == algorithm
        assert not PRIVATE_MEMBERS & set(published), published
        # Exactly the public members of its key type, each a string.
        assert set(published) == {"kid", "alg", "use", *PUBLIC_MEMBERS[kty]}, published
        assert all(isinstance(value, str) for value in published.values())
        # A real token of this algorithm verifies against what was published.
        await register(client, EMAIL)
        token = (await login(client, EMAIL))["access_token"]
        assert header_of(token)["alg"] == algorithm
        verify_like_another_service(token, response.json())


async def test_with_hs256_the_jwks_is_empty_and_tokens_carry_no_kid(
    client: httpx.AsyncClient,
) -> None:
    assert await fetch_jwks(client) == {"keys": []}
    await register(client, EMAIL)
    token = (await login(client, EMAIL))["access_token"]
    assert header_of(token) == {"alg": "HS256", "typ": "at+jwt"}
    assert claims_of(token)["roles"] == [] and claims_of(token)["scope"] == ""


async def test_rotation_keeps_old_tokens_working_while_their_key_is_listed_as_previous(
    settings: CoreSettings, tmp_path: Path
) -> None:
    old_key, new_key_file = key_file(tmp_path, "old"), key_file(tmp_path, "new")

    # Step 1: the old key signs, the new one is published as next (caches pick it up).
    first = signing_with(old_key, next_key=new_key_file)
    async with running_app(settings, first) as app, client_for(app) as client:
        await register(client, EMAIL)
        pair = await login(client, EMAIL)
        before = await fetch_jwks(client)
    old_kid = header_of(pair["access_token"])["kid"]
    assert len(before["keys"]) == 2
    new_kid = next(k["kid"] for k in before["keys"] if k["kid"] != old_kid)

    # Step 2: the new key signs, the old one is listed as previous.
    rotated = signing_with(new_key_file, previous=[old_key])
    async with running_app(settings, rotated) as app, client_for(app) as client:
        jwks = await fetch_jwks(client)
        assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}
        # The token signed before the rotation still works, at Gatehouse and elsewhere.
        assert (
            await client.get("/users/me", headers=bearer(pair["access_token"]))
        ).status_code == 200
        verify_like_another_service(pair["access_token"], jwks)
        # New tokens (login, refresh) are signed with the new key.
        refreshed = await client.post(
            "/auth/jwt/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        assert header_of(refreshed.json()["access_token"])["kid"] == new_kid
        assert header_of((await login(client, EMAIL))["access_token"])["kid"] == new_kid
        verify_like_another_service(refreshed.json()["access_token"], jwks)

    # Step 3: the old key is dropped (after ACCESS_TOKEN_TTL): its tokens are refused.
    async with running_app(settings, signing_with(new_key_file)) as app, client_for(app) as client:
        assert [k["kid"] for k in (await fetch_jwks(client))["keys"]] == [new_kid]
        await assert_rejected(client, pair["access_token"])


async def test_a_previous_or_next_key_may_be_given_as_a_public_key_only(
    settings: CoreSettings, tmp_path: Path
) -> None:
    old = new_key("ES256")
    public_only = tmp_path / "old.pub.pem"
    public_only.write_bytes(public_pem(old))
    first = signing_with(write_key(tmp_path / "old.pem", old))
    async with running_app(settings, first) as app, client_for(app) as client:
        await register(client, EMAIL)
        token = (await login(client, EMAIL))["access_token"]
    rotated = signing_with(key_file(tmp_path, "new"), previous=[public_only])
    async with running_app(settings, rotated) as app, client_for(app) as client:
        assert (await client.get("/users/me", headers=bearer(token))).status_code == 200


async def test_hs256_tokens_stop_working_at_a_switch_to_es256_but_the_session_survives(
    settings: CoreSettings, tmp_path: Path
) -> None:
    """Documented: an algorithm switch away from HS256 refuses the HS256 access tokens (401);
    the client refreshes (refresh tokens are not JWTs) and gets an ES256 one."""
    first = signing_with(None, "HS256")
    async with running_app(settings, first) as app, client_for(app) as client:
        await register(client, EMAIL)
        pair = await login(client, EMAIL)
    assert "kid" not in header_of(pair["access_token"])
    switched = signing_with(key_file(tmp_path, "k"))
    async with running_app(settings, switched) as app, client_for(app) as client:
        await assert_rejected(client, pair["access_token"])
        refreshed = await client.post(
            "/auth/jwt/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 200, refreshed.text
        token = refreshed.json()["access_token"]
        assert header_of(token)["alg"] == "ES256"
        assert (await client.get("/users/me", headers=bearer(token))).status_code == 200


async def test_switching_back_to_hs256_keeps_es256_tokens_whose_key_is_previous(
    settings: CoreSettings, tmp_path: Path
) -> None:
    es_key = key_file(tmp_path, "es")
    async with running_app(settings, signing_with(es_key)) as app, client_for(app) as client:
        await register(client, EMAIL)
        token = (await login(client, EMAIL))["access_token"]
    back = signing_with(None, "HS256", previous=[es_key])
    async with running_app(settings, back) as app, client_for(app) as client:
        assert (await client.get("/users/me", headers=bearer(token))).status_code == 200
        assert [k["alg"] for k in (await fetch_jwks(client))["keys"]] == ["ES256"]
        new_token = (await login(client, EMAIL))["access_token"]
        assert header_of(new_token)["alg"] == "HS256" and "kid" not in header_of(new_token)
        assert (await client.get("/users/me", headers=bearer(new_token))).status_code == 200


# --- alg confusion ------------------------------------------------------------------------------


def _hmac_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: PyJWT refuses to use a PEM public key as an HMAC secret, an attacker
    would not."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    tag = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(tag)}"


async def test_alg_confusion_stays_closed(settings: CoreSettings, tmp_path: Path) -> None:
    key = new_key("ES256")
    users = signing_with(write_key(tmp_path / "k.pem", key))
    async with running_app(settings, users) as app, client_for(app) as client:
        await register(client, EMAIL)
        live = (await login(client, EMAIL))["access_token"]
        claims, kid = claims_of(live), header_of(live)["kid"]
        jwks = await fetch_jwks(client)

        # The control: the same claims re-signed with the real key and kid are accepted, so
        # each refusal below comes from its one change.
        control = jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
        assert (await client.get("/users/me", headers=bearer(control))).status_code == 200

        # HS256 "signed" with the public key, in every form a verifier might hold it.
        published_jwk = json.dumps(jwks["keys"][0]).encode()
        for secret in (public_pem(key), public_pem(key).strip(), published_jwk):
            for header in (
                {"alg": "HS256", "typ": "at+jwt", "kid": kid},
                {"alg": "HS256", "typ": "at+jwt"},
            ):
                await assert_rejected(client, _hmac_signed(header, claims, secret))

        # alg none, with and without the kid.
        for header in ({"alg": "none", "kid": kid}, {"alg": "none"}):
            await assert_rejected(client, f"{_segment(header)}.{_segment(claims)}.")

        # A kid nobody configured: signed with another key, named by its own or a made-up kid.
        stranger = new_key("ES256")
        stranger_kid = verification_key(stranger.public_key()).kid
        for unknown in ("unknown", kid + "x", stranger_kid):
            forged = jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": unknown})
            await assert_rejected(client, forged)
        # Another key under the real kid: the signature fails.
        await assert_rejected(
            client, jwt.encode(claims, stranger, algorithm="ES256", headers={"kid": kid})
        )
        # The real kid, but another algorithm than the one it is pinned to.
        await assert_rejected(
            client,
            jwt.encode(claims, new_key("EdDSA"), algorithm="EdDSA", headers={"kid": kid}),
        )
        # An HS256 token signed with the secret key: HS256 does not verify while ES256 signs.
        await assert_rejected(
            client,
            jwt.encode(claims, settings.signing_key, algorithm="HS256", headers={"typ": "at+jwt"}),
        )
