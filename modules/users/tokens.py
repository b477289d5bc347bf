"""Access tokens (signed JWTs) and refresh tokens (opaque random strings), nothing else.

Access tokens are JWTs signed as ACCESS_TOKEN_ALGORITHM says (HS256 with the secret by
default; ES256, EdDSA or RS256 with a private key, see signing_keys.py), the algorithm pinned
per key. They carry a type marker in two places, the audience `gatehouse:access` and the claim
`typ: "access"` (plus the header `typ: at+jwt`, RFC 9068), so fastapi-users' reset and verify
tokens, signed with the same secret but for other audiences, can never pass as one (RFC 8725
§3.11). Only keys configured here are used: `jku`, `x5u` and `jwk` headers are never looked at,
and `kid` only selects among the configured public keys (an unknown one is refused). HS256
tokens carry no `kid` and are verified with the secret only while HS256 signs.

They also carry `roles` and `scope` (space-separated permissions, RFC 9068 §2.2.3) as of their
issue, for services that verify offline; Gatehouse itself checks the session (and permissions)
live on every request.

Refresh tokens are opaque to clients: base64url of (version, session id, generation, 128
random bits) and an HMAC-SHA256 tag over them (truncated to 128 bits), under a key derived from
the secret for this use only. The database keeps the session's generation and the SHA-256 of
its one current token, nothing more: a token of an older generation is recognised by its tag
as one we issued, so presenting it again is reuse, without a row per rotation. The random part
means the secret alone cannot forge a current token (its hash must match too); the tag means a
forged old generation cannot end someone's session. Tokens issued before this format (256
random bits) are still honoured through their hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt

from modules.users.signing_keys import AccessTokenKeys

ALGORITHM = "HS256"  # the default, and the only algorithm of tokens without a `kid`
ISSUER = "gatehouse"
ACCESS_AUDIENCE = "gatehouse:access"
ACCESS_TYPE = "access"
ACCESS_HEADER_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["sub", "aud", "iss", "iat", "exp", "jti", "sid", "typ"]
REFRESH_TOKEN_VERSION = 1
# version, session id, generation, random part; then the tag.
_REFRESH_BODY = struct.Struct(">B16sQ16s")
REFRESH_TAG_BYTES = 16
REFRESH_TOKEN_LENGTH = len(
    base64.urlsafe_b64encode(b"\0" * (_REFRESH_BODY.size + REFRESH_TAG_BYTES)).rstrip(b"=")
)
_REFRESH_KEY_LABEL = b"gatehouse refresh token v1"


class InvalidAccessToken(Exception):
    """The token is not one of our live-shaped access tokens (why is not told to the client)."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: int


def issue_access_token(
    keys: AccessTokenKeys,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    issued_at: datetime,
    expires_at: datetime,
    roles: Sequence[str] = (),
    scope: str = "",
) -> str:
    payload = {
        "sub": str(user_id),
        "aud": ACCESS_AUDIENCE,
        "iss": ISSUER,
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": uuid.uuid4().hex,
        "sid": str(session_id),
        "typ": ACCESS_TYPE,
        "roles": list(roles),
        "scope": scope,
    }
    if keys.private_key is None:
        return jwt.encode(
            payload, keys.secret, algorithm=ALGORITHM, headers={"typ": ACCESS_HEADER_TYPE}
        )
    return jwt.encode(
        payload,
        keys.private_key,
        algorithm=keys.algorithm,
        headers={"typ": ACCESS_HEADER_TYPE, "kid": keys.kid},
    )


def _verifying_key(keys: AccessTokenKeys, token: str) -> tuple[Any, str]:
    """The key and the one algorithm that may verify this token, chosen by its `kid` alone."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(type(exc).__name__) from None
    kid = header.get("kid")
    if kid is None:
        if keys.algorithm != ALGORITHM:
            raise InvalidAccessToken("no kid")  # HS256 tokens stop verifying at a switch
        return keys.secret, ALGORITHM
    found = keys.by_kid.get(kid)
    if found is None:
        raise InvalidAccessToken("unknown kid")
    return found.public_key, found.algorithm


def read_access_token(keys: AccessTokenKeys, token: str) -> AccessClaims:
    """Check signature, algorithm, audience, issuer, exp, nbf (when present) and the type."""
    if keys.by_kid:
        key, algorithm = _verifying_key(keys, token)
    else:
        # HS256 and no key files: the secret or nothing (no header to look at first).
        key, algorithm = keys.secret, ALGORITHM
    try:
        decoded = jwt.api_jwt.decode_complete(
            token,
            key,
            algorithms=[algorithm],  # the allowlist of this key: `none`, HS512… are all refused
            audience=ACCESS_AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(type(exc).__name__) from None
    header, claims = decoded["header"], decoded["payload"]
    if header.get("alg") != algorithm or claims.get("typ") != ACCESS_TYPE:
        raise InvalidAccessToken("not an access token")
    if algorithm == ALGORITHM and "kid" in header:
        raise InvalidAccessToken("an HS256 token with a kid")
    try:
        return AccessClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            session_id=uuid.UUID(str(claims["sid"])),
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )
    except (ValueError, TypeError):
        raise InvalidAccessToken("malformed claims") from None


@dataclass(frozen=True)
class RefreshClaims:
    session_id: uuid.UUID
    generation: int


def _refresh_tag(secret: str, body: bytes) -> bytes:
    # Its own key: a refresh tag can never be confused with any other use of the secret.
    key = hmac.new(secret.encode(), _REFRESH_KEY_LABEL, hashlib.sha256).digest()
    return hmac.new(key, body, hashlib.sha256).digest()[:REFRESH_TAG_BYTES]


def issue_refresh_token(secret: str, session_id: uuid.UUID, generation: int) -> str:
    body = _REFRESH_BODY.pack(
        REFRESH_TOKEN_VERSION, session_id.bytes, generation, secrets.token_bytes(16)
    )
    token = body + _refresh_tag(secret, body)
    return base64.urlsafe_b64encode(token).rstrip(b"=").decode()


def read_refresh_token(secret: str, token: str) -> RefreshClaims | None:
    """The session and generation of a token we issued in this format; None for anything
    else (a token from before this format, or not ours at all)."""
    if len(token) != REFRESH_TOKEN_LENGTH:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, binascii.Error):
        return None
    body, tag = raw[:-REFRESH_TAG_BYTES], raw[-REFRESH_TAG_BYTES:]
    if len(body) != _REFRESH_BODY.size or not hmac.compare_digest(tag, _refresh_tag(secret, body)):
        return None
    version, session_id, generation, _random = _REFRESH_BODY.unpack(body)
    if version != REFRESH_TOKEN_VERSION:
        return None
    return RefreshClaims(session_id=uuid.UUID(bytes=session_id), generation=generation)


def hash_refresh_token(token: str) -> str:
    # A plain digest is enough: the token has 128 or more random bits, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
