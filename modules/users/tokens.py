"""Access tokens (signed JWTs) and refresh tokens (opaque random strings), nothing else.

Access tokens are HS256 JWTs with the algorithm pinned. They carry a type marker in two
places, the audience `gatehouse:access` and the claim `typ: "access"` (plus the header
`typ: at+jwt`, RFC 9068), so fastapi-users' reset and verify tokens, signed with the same
secret but for other audiences, can never pass as one (RFC 8725 §3.11). Only the key given
here is used: `jku`, `x5u`, `jwk` and `kid` headers are never looked at.

Refresh tokens are 256 random bits; the database keeps only their SHA-256.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

import jwt

ALGORITHM = "HS256"
ISSUER = "gatehouse"
ACCESS_AUDIENCE = "gatehouse:access"
ACCESS_TYPE = "access"
ACCESS_HEADER_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["sub", "aud", "iss", "iat", "exp", "jti", "sid", "typ"]
REFRESH_TOKEN_BYTES = 32


class InvalidAccessToken(Exception):
    """The token is not one of our live-shaped access tokens (why is not told to the client)."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    session_id: uuid.UUID
    token_id: str
    expires_at: int


def issue_access_token(
    secret: str,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    issued_at: datetime,
    expires_at: datetime,
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
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM, headers={"typ": ACCESS_HEADER_TYPE})


def read_access_token(secret: str, token: str) -> AccessClaims:
    """Check signature, algorithm, audience, issuer, exp, nbf (when present) and the type."""
    try:
        decoded = jwt.api_jwt.decode_complete(
            token,
            secret,
            algorithms=[ALGORITHM],  # the allowlist: `none`, HS512, RS256… are all refused
            audience=ACCESS_AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(type(exc).__name__) from None
    header, claims = decoded["header"], decoded["payload"]
    if header.get("alg") != ALGORITHM or claims.get("typ") != ACCESS_TYPE:
        raise InvalidAccessToken("not an access token")
    try:
        return AccessClaims(
            user_id=uuid.UUID(str(claims["sub"])),
            session_id=uuid.UUID(str(claims["sid"])),
            token_id=str(claims["jti"]),
            expires_at=int(claims["exp"]),
        )
    except (ValueError, TypeError):
        raise InvalidAccessToken("malformed claims") from None


def new_refresh_token() -> str:
    return secrets.token_urlsafe(REFRESH_TOKEN_BYTES)


def hash_refresh_token(token: str) -> str:
    # A plain digest is enough: the token has 256 random bits, nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()
