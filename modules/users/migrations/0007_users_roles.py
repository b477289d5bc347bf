"""users: roles (named sets of permissions) and their grants to users

Revision ID: users_0007
Revises: users_0006
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from fastapi_users_db_sqlalchemy.generics import GUID

revision: str = "users_0007"
down_revision: str | None = "users_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Expand only: three new tables, nothing existing changes (a running older release keeps
    # working against the migrated schema).
    op.create_table(
        "role",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_role")),
    )
    op.create_table(
        "role_permission",
        sa.Column("role_name", sa.String(length=64), nullable=False),
        sa.Column("permission", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["role_name"],
            ["role.name"],
            name=op.f("fk_role_permission_role_name_role"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("role_name", "permission", name=op.f("pk_role_permission")),
    )
    op.create_table(
        "user_role",
        sa.Column("user_id", GUID(), nullable=False),
        sa.Column("role_name", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user.id"], name=op.f("fk_user_role_user_id_user"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["role_name"],
            ["role.name"],
            name=op.f("fk_user_role_role_name_role"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role_name", name=op.f("pk_user_role")),
    )
    op.create_index(op.f("ix_user_role_role_name"), "user_role", ["role_name"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_user_role_role_name"), table_name="user_role")
    op.drop_table("user_role")
    op.drop_table("role_permission")
    op.drop_table("role")
