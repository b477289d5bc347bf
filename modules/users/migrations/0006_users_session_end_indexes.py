"""users: indexes on when a login session ends, for the scheduled purge

Revision ID: users_0006
Revises: users_0005
Create Date: 2026-11-30
"""

from collections.abc import Sequence

from alembic import op

revision: str = "users_0006"
down_revision: str | None = "users_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The purge looks for sessions revoked or expired before a cutoff, a batch at a time:
    # without these, every batch would scan the whole table.
    op.create_index(
        op.f("ix_login_session_expires_at"), "login_session", ["expires_at"], unique=False
    )
    op.create_index(
        op.f("ix_login_session_revoked_at"), "login_session", ["revoked_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_login_session_revoked_at"), table_name="login_session")
    op.drop_index(op.f("ix_login_session_expires_at"), table_name="login_session")
