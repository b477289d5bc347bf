"""Request and response bodies of the users module."""

from __future__ import annotations

import uuid

from fastapi_users import schemas
from pydantic import ConfigDict, field_validator


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


class UserCreate(schemas.BaseUserCreate):
    # Strict: `"is_verified": 0` is a type error, not False (what the schema says is what we take).
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery staple"}]
        },
    )


class UserUpdate(schemas.BaseUserUpdate):
    """Fields left out stay as they are; an explicit null is refused (fastapi-users would try
    to store it: `"email": null` ended in a NOT NULL violation, found by the fuzz test)."""

    @field_validator("email", "password", "is_active", "is_superuser", "is_verified", mode="before")
    @classmethod
    def _no_explicit_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    model_config = ConfigDict(
        strict=True, json_schema_extra={"examples": [{"password": "a new long passphrase"}]}
    )
