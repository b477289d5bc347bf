"""users: a refresh generation per login session (no row per rotation)

Revision ID: users_0004
Revises: users_0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "users_0004"
down_revision: str | None = "users_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Sessions from before start at generation 0: their current (old-format) token is found
    # by its hash, and their rotated_refresh_token rows still mark reuse.
    with op.batch_alter_table("login_session") as batch:
        batch.add_column(
            sa.Column("refresh_generation", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("login_session") as batch:
        batch.drop_column("refresh_generation")
