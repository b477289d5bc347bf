"""Request and response bodies of the users module."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self, cast

from fastapi_users import schemas
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from modules.users.emails import canonical_email
from modules.users.models import User
from modules.users.settings import UsersSettings

# The password rule as the default settings state it (PASSWORD_MIN_LENGTH may raise it).
PASSWORD_MIN_LENGTH = UsersSettings.model_fields["password_min_length"].default
PASSWORD_MAX_LENGTH = UsersSettings.model_fields["password_max_length"].default
PASSWORD_RULE = (
    f"At least {PASSWORD_MIN_LENGTH} characters (PASSWORD_MIN_LENGTH), "
    f"at most {PASSWORD_MAX_LENGTH}; not built from the email address; not among the most "
    "common or breached passwords."
)


class UserRead(schemas.BaseUser[uuid.UUID]):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "5c3f3f0e-6a1b-4a49-9d0a-3f5e2a4f1b7c",
                    "email": "ada@example.com",
                    "is_active": True,
                    "is_superuser": False,
                    "is_verified": False,
                }
            ]
        },
    )

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        """From a User row: its values as they are, without validating them again (they were
        validated when written; EmailStr's check alone was ~10% of a GET /users/me)."""
        # UserRead itself only: a subclass may convert on the way (UserAdminRead's created_at).
        if cls is UserRead and isinstance(obj, User) and not args and not kwargs:
            values = {name: getattr(obj, name) for name in cls.model_fields}
            return cast(Self, cls.model_construct(**values))
        return super().model_validate(obj, *args, **kwargs)


class UserAdminRead(UserRead):
    """An account as the administrators' list shows it: with its creation time."""

    created_at: AwareDatetime | None = Field(
        description="When the account was created (accounts older than this field: when "
        "it was added)."
    )

    @field_validator("created_at", mode="before")
    @classmethod
    def _utc(cls, value: object) -> object:
        # SQLite hands timestamps back without a zone; they are stored in UTC.
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class UserCreate(schemas.CreateUpdateDictModel):
    """What a client sends to register: an email and a password, nothing else. The server owns
    `is_active`, `is_superuser` and `is_verified` (sent anyway, they are ignored)."""

    email: EmailStr
    password: str = Field(description=PASSWORD_RULE)

    @field_validator("email", mode="after")
    @classmethod
    def _canonical(cls, value: str) -> str:
        # After email-validator's own normalisation: the one form stored and looked up.
        return canonical_email(value)

    # Strict: `"is_verified": 0` is a type error, not False (what the schema says is what we take).
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery staple"}]
        },
    )


class SuperuserCreate(UserCreate):
    """`python -m app create-superuser` only: never a request body."""

    is_active: bool = True
    is_superuser: bool = True
    is_verified: bool = True

    def create_update_dict_superuser(self) -> dict[str, Any]:
        # fastapi-users dumps only the fields that were set: these defaults are the point.
        return self.model_dump()


class LoginForm(BaseModel):
    """OAuth2's password-grant form (RFC 6749 §4.3.2), reduced to what the server reads: other
    fields (`grant_type`, `scope`, client credentials), sent by OAuth2 clients, are ignored."""

    username: str = Field(description="The account's email address.", examples=["ada@example.com"])
    password: str = Field(examples=["correct horse battery staple"])


class ForgotPasswordRequest(BaseModel):
    email: EmailStr = Field(description="Where the reset link goes, if an account has it.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})


class ResetPasswordRequest(BaseModel):
    token: str = Field(description="From the reset mail.")
    password: str = Field(description=PASSWORD_RULE)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token": "eyJhbGciOiJIUzI1NiJ9…", "password": "a new long passphrase"}]
        }
    )


class VerifyTokenRequest(BaseModel):
    email: EmailStr = Field(description="Where the verification link goes, if unverified.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"email": "ada@example.com"}]})


class VerifyRequest(BaseModel):
    token: str = Field(description="From the verification mail.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"token": "eyJhbGciOiJIUzI1NiJ9…"}]})


def _without_current_password(update: dict[str, Any]) -> dict[str, Any]:
    # It proves who asks; it is never a field to store.
    update.pop("current_password", None)
    return update


class UserUpdate(schemas.BaseUserUpdate):
    """Fields left out stay as they are; an explicit null is refused (fastapi-users would try
    to store it: `"email": null` ended in a NOT NULL violation, found by the fuzz test)."""

    @field_validator("email", "password", "is_active", "is_superuser", "is_verified", mode="before")
    @classmethod
    def _no_explicit_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @field_validator("email", mode="after")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        return None if value is None else canonical_email(value)

    current_password: str | None = Field(
        default=None,
        description=(
            "Your current password: required on PATCH /users/me (and on a superuser's PATCH "
            "of its own /users/{id}) to set a new password or a new email."
        ),
    )

    def create_update_dict(self) -> dict[str, Any]:
        return _without_current_password(super().create_update_dict())  # type: ignore[no-untyped-call]

    def create_update_dict_superuser(self) -> dict[str, Any]:
        return _without_current_password(super().create_update_dict_superuser())  # type: ignore[no-untyped-call]

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [
                {"password": "a new long passphrase", "current_password": "the old passphrase"},
                {"email": "ada@example.org", "current_password": "the passphrase"},
            ]
        },
    )


class UndoEmailChangeRequest(BaseModel):
    token: str = Field(
        min_length=1, max_length=2048, description="From the mail to the old address."
    )
    password: str = Field(
        description="The new password (whoever changed the address knows the old one)."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"token": "eyJhbGciOiJIUzI1NiJ9…", "password": "a new passphrase"}]
        }
    )


class TokenPair(BaseModel):
    """What login and refresh answer (with `Cache-Control: no-store`)."""

    access_token: str = Field(description="HS256 JWT; send it as `Authorization: Bearer …`.")
    refresh_token: str = Field(description="Opaque; single use: each refresh rotates it.")
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "access_token": "eyJhbGciOiJIUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiI1YzNm…",
                    "refresh_token": "q0XJ6c1w7m3uV8k4bG2eYt9pZr5nLs1aHd0fWj3oKcE",
                    "token_type": "bearer",
                    "expires_in": 900,
                }
            ]
        }
    )


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"refresh_token": "q0XJ6c1w7m3uV8k4bG2eYt9pZr5nLs1aHd0fWj3oKcE"}]
        }
    )


class SessionRead(BaseModel):
    """A live login session of the caller (one per login, across its refreshes)."""

    id: uuid.UUID
    created_at: AwareDatetime
    last_used_at: AwareDatetime = Field(description="The login or the latest refresh.")
    expires_at: AwareDatetime = Field(description="Absolute end; refreshing never moves it.")
    user_agent: str | None
    client_address: str | None
    current: bool = Field(description="True for the session of the token making this call.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "0b8e6b1e-3f0a-4c55-9d6a-2f4f0e1c7a11",
                    "created_at": "2026-11-26T09:00:00Z",
                    "last_used_at": "2026-11-26T09:45:00Z",
                    "expires_at": "2026-12-26T09:00:00Z",
                    "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                    "client_address": "203.0.113.7",
                    "current": True,
                }
            ]
        }
    )


# Roles and permissions ------------------------------------------------------------------------

# Lower-case words joined by - or _: "auditor", "support-desk".
ROLE_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
# "<module>:<action>" (app/permissions.py); whether a loaded module declares it is checked on write.
PERMISSION_NAME_PATTERN = r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$"
RoleName = Annotated[str, StringConstraints(pattern=ROLE_NAME_PATTERN)]
PermissionName = Annotated[str, StringConstraints(pattern=PERMISSION_NAME_PATTERN, max_length=100)]


class RoleCreate(BaseModel):
    name: RoleName
    permissions: list[PermissionName] = Field(max_length=200)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "auditor", "permissions": ["users:read"]}]},
    )


class RoleUpdate(BaseModel):
    permissions: list[PermissionName] = Field(
        max_length=200, description="The role's permissions from now on (the whole set)."
    )

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"permissions": ["users:read", "roles:read"]}]},
    )


class RoleRead(BaseModel):
    name: str
    permissions: list[str] = Field(description="Sorted.")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "auditor", "permissions": ["users:read"]}]}
    )


class UserRolesUpdate(BaseModel):
    roles: list[RoleName] = Field(
        max_length=100, description="The roles the user holds from now on (the whole set)."
    )

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"roles": ["auditor"]}]}
    )


class UserRolesRead(BaseModel):
    roles: list[str] = Field(description="Sorted.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"roles": ["auditor"]}]})


class MyPermissions(BaseModel):
    """What the caller may do, read live (as every check does)."""

    roles: list[str] = Field(description="The roles granted to you, sorted.")
    permissions: list[str] = Field(
        description="Every permission you hold, sorted: a superuser holds every declared one."
    )

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"roles": ["auditor"], "permissions": ["users:read"]}]}
    )


class JsonWebKey(BaseModel):
    """A public key that verifies access tokens (RFC 7517). Public members only."""

    kty: Literal["EC", "OKP", "RSA"]
    kid: str = Field(description="RFC 7638 thumbprint; the `kid` header of the tokens it signs.")
    alg: Literal["ES256", "EdDSA", "RS256"] = Field(description="The one algorithm it verifies.")
    use: Literal["sig"]
    crv: str | None = Field(default=None, description="EC and OKP keys: P-256 or Ed25519.")
    x: str | None = None
    y: str | None = None
    n: str | None = Field(default=None, description="RSA keys: modulus.")
    e: str | None = Field(default=None, description="RSA keys: public exponent.")


class JsonWebKeySet(BaseModel):
    """The keys other services verify access tokens with: current, next and previous."""

    keys: list[JsonWebKey]

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "keys": [
                        {
                            "kty": "EC",
                            "kid": "q1GzJQq2x9qGv0o9m3zRr3pW9Q9Yk4Jv2mXJ4r5b6cM",
                            "alg": "ES256",
                            "use": "sig",
                            "crv": "P-256",
                            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                        }
                    ]
                }
            ]
        }
    )
