"""Tables of the users module."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID
from fastapi_users_db_sqlalchemy.generics import GUID
from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base

# SHA-256 in hex: refresh tokens are stored only as this digest.
TOKEN_HASH_LENGTH = 64


def _utcnow() -> datetime:
    return datetime.now(UTC)


class User(SQLAlchemyBaseUserTableUUID, Base):
    """fastapi-users' user table (UUID ids): email, hashed_password and the three flags, and
    when the account was created (the administrators' list, GET /users, is sorted by it).

    `created_at` is nullable in the database only because users_0005 added it to existing
    tables (expand-only); every row has one (the migration dated the rows it found)."""

    __table_args__ = (Index("ix_user_created_at_id", "created_at", "id"),)

    created_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, default=_utcnow
    )


class LoginSession(Base):
    """One login: its id is the `sid` claim of every access token issued for it.

    `expires_at` is fixed at login (REFRESH_TOKEN_TTL later) and never moved by a refresh, so
    rotation cannot stretch a session past its absolute lifetime.
    """

    __tablename__ = "login_session"

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("user.id", ondelete="CASCADE"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    # Indexed for the purge (ended sessions before a cutoff).
    expires_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    revoked_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )
    user_agent: Mapped[str | None] = mapped_column(String(length=512), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(length=255), nullable=True)
    # The hash of the one refresh token that is valid now; rotation replaces it.
    refresh_token_hash: Mapped[str] = mapped_column(
        String(length=TOKEN_HASH_LENGTH), nullable=False, unique=True, index=True
    )
    # How many times the refresh token was rotated: every token names its generation, so an
    # older one is recognised as reuse without keeping a row per rotation.
    refresh_generation: Mapped[int] = mapped_column(
        BigInteger, nullable=False, default=0, server_default="0"
    )


class RotatedRefreshToken(Base):
    """A refresh token that was rotated away: presenting it again is reuse (theft).

    Only tokens from before generation-carrying refresh tokens land here: the first rotation
    of such a session records its last old-format token (one row per session, ever); rows
    written before that change are honoured until their session is purged."""

    __tablename__ = "rotated_refresh_token"

    token_hash: Mapped[str] = mapped_column(String(length=TOKEN_HASH_LENGTH), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("login_session.id", ondelete="CASCADE"), nullable=False, index=True
    )
    rotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


# Role names: lower-case words joined by - or _ ("auditor", "support-desk").
ROLE_NAME_LENGTH = 64
PERMISSION_LENGTH = 100


class Role(Base):
    """A named set of permissions (role_permission), granted to users (user_role).

    Checks read these tables live on every request that needs a permission (one indexed
    join, see roles_repository.py), so a grant or a removal holds on the caller's next request
    in every process."""

    __tablename__ = "role"

    name: Mapped[str] = mapped_column(String(length=ROLE_NAME_LENGTH), primary_key=True)


class RolePermission(Base):
    __tablename__ = "role_permission"

    role_name: Mapped[str] = mapped_column(
        String(length=ROLE_NAME_LENGTH),
        ForeignKey("role.name", ondelete="CASCADE"),
        primary_key=True,
    )
    # "<module>:<action>", validated against the loaded modules' declarations when written.
    permission: Mapped[str] = mapped_column(String(length=PERMISSION_LENGTH), primary_key=True)


class UserRole(Base):
    __tablename__ = "user_role"

    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, ForeignKey("user.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed for deleting a role (its grants cascade) and listing who holds it.
    role_name: Mapped[str] = mapped_column(
        String(length=ROLE_NAME_LENGTH),
        ForeignKey("role.name", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
