"""The tokens Gatehouse mails: password reset, email verification, undo of an email change.

Reset and verify tokens carry `fgpt`, an HMAC (with the signing key) of the account's id, its
email address and its stored password hash. A token therefore dies when the password changes
*or* the address changes (a token mailed to an old address cannot be used once the account has
moved on), and checking one costs a SHA-256, not an argon2 run: a public endpoint never pays
an account-dependent hash (the old format hashed the stored hash with argon2 in the shared
pool, which made the next login measurably slower for known accounts only).

The undo token of an email change is not bound to the password: whoever changed the address
knew the password and could otherwise kill the owner's undo link by changing it again.

Tokens in the format before this one (`password_fgpt`) are refused: they die, and their owners
ask for a new mail (at most RESET_TOKEN_TTL / VERIFY_TOKEN_TTL after the upgrade, see README).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass

import jwt
from fastapi_users.jwt import decode_jwt, generate_jwt

from modules.users.models import User

RESET_PURPOSE = "reset"
VERIFY_PURPOSE = "verify"
UNDO_AUDIENCE = "gatehouse:email-undo"


class InvalidMailToken(Exception):
    """Not a live token of this kind (why is never told to the client)."""


def fingerprint(secret: str, purpose: str, user: User) -> str:
    message = "\x00".join((purpose, str(user.id), user.email, user.hashed_password))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue_bound_token(
    secret: str, audience: str, purpose: str, user: User, lifetime_seconds: int
) -> str:
    data = {"sub": str(user.id), "aud": audience, "fgpt": fingerprint(secret, purpose, user)}
    return generate_jwt(data, secret, lifetime_seconds)


@dataclass(frozen=True)
class BoundToken:
    user_id: uuid.UUID
    fingerprint: str


def read_bound_token(secret: str, audience: str, token: str) -> BoundToken:
    try:
        data = decode_jwt(token, secret, [audience])
        return BoundToken(user_id=uuid.UUID(str(data["sub"])), fingerprint=str(data["fgpt"]))
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise InvalidMailToken from None


def still_bound(secret: str, purpose: str, token: BoundToken, user: User) -> bool:
    return hmac.compare_digest(fingerprint(secret, purpose, user), token.fingerprint)


@dataclass(frozen=True)
class UndoEmailChange:
    user_id: uuid.UUID
    old_email: str
    new_email: str


def issue_undo_token(secret: str, change: UndoEmailChange, lifetime_seconds: int) -> str:
    data = {
        "sub": str(change.user_id),
        "aud": UNDO_AUDIENCE,
        "old": change.old_email,
        "new": change.new_email,
    }
    return generate_jwt(data, secret, lifetime_seconds)


def read_undo_token(secret: str, token: str) -> UndoEmailChange:
    try:
        data = decode_jwt(token, secret, [UNDO_AUDIENCE])
        return UndoEmailChange(
            user_id=uuid.UUID(str(data["sub"])),
            old_email=str(data["old"]),
            new_email=str(data["new"]),
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        raise InvalidMailToken from None
