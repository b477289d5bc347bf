"""users: login sessions and rotated refresh tokens

Revision ID: users_0002
Revises: users_0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from fastapi_users_db_sqlalchemy.generics import GUID

revision: str = "users_0002"
down_revision: str | None = "users_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_session",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("user_id", GUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("client_address", sa.String(length=255), nullable=True),
        sa.Column("refresh_token_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
            name=op.f("fk_login_session_user_id_user"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_session")),
    )
    op.create_index(
        op.f("ix_login_session_refresh_token_hash"),
        "login_session",
        ["refresh_token_hash"],
        unique=True,
    )
    op.create_index(op.f("ix_login_session_user_id"), "login_session", ["user_id"], unique=False)
    op.create_table(
        "rotated_refresh_token",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("session_id", GUID(), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["login_session.id"],
            name=op.f("fk_rotated_refresh_token_session_id_login_session"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_rotated_refresh_token")),
    )
    op.create_index(
        op.f("ix_rotated_refresh_token_session_id"),
        "rotated_refresh_token",
        ["session_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_rotated_refresh_token_session_id"), table_name="rotated_refresh_token")
    op.drop_table("rotated_refresh_token")
    op.drop_index(op.f("ix_login_session_user_id"), table_name="login_session")
    op.drop_index(op.f("ix_login_session_refresh_token_hash"), table_name="login_session")
    op.drop_table("login_session")
