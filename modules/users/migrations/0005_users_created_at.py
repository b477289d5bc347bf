"""users: when each account was created (the administrators' list is sorted by it)

Revision ID: users_0005
Revises: users_0004
Create Date: 2026-11-30

Expand-only: one nullable column and one index, no rewrite of what is there. Accounts from
before this revision get the time of the migration (their real creation time was never
recorded); among them the id breaks the tie, so the list's order is still total and stable.
New rows get the time from the application (`User.created_at`'s default) and, on
PostgreSQL, from the column's default too, so a row written by code from before this
revision (a rolling deploy) is dated as well.
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "users_0005"
down_revision: str | None = "users_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite cannot add a column whose default is not a constant (now()): there the
    # application's default is the only one; SQLite deployments are single-instance anyway.
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column(
        "user",
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=True,
            server_default=sa.func.now() if postgres else None,
        ),
    )
    user = sa.table("user", sa.column("created_at", sa.DateTime(timezone=True)))
    op.execute(
        user.update().where(user.c.created_at.is_(None)).values(created_at=datetime.now(UTC))
    )
    op.create_index(op.f("ix_user_created_at_id"), "user", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_user_created_at_id"), table_name="user")
    with op.batch_alter_table("user") as batch:
        batch.drop_column("created_at")
