"""users: one canonical form of every email address (NFKC, lower-cased)

Existing addresses are folded to the form the application now stores and looks up
(modules/users/emails.py). The unique index on `email` then makes the canonical address
unique. When two accounts fold to one address the migration refuses, naming the account ids:
merging accounts is a decision for a person, not for a migration.

Revision ID: users_0003
Revises: users_0002
Create Date: 2026-11-29
"""

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from modules.users.emails import canonical_email

revision: str = "users_0003"
down_revision: str | None = "users_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

USER = sa.table("user", sa.column("id"), sa.column("email", sa.String))


class DuplicateAccountsError(RuntimeError):
    """Accounts whose addresses differ only in case or Unicode form."""


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(USER.c.id, USER.c.email)).all()
    by_address: dict[str, list[str]] = defaultdict(list)
    for user_id, email in rows:
        by_address[canonical_email(email)].append(str(user_id))
    clashes = [ids for ids in by_address.values() if len(ids) > 1]
    if clashes:
        listed = "; ".join(", ".join(sorted(ids)) for ids in clashes)
        raise DuplicateAccountsError(
            f"users_0003: {len(clashes)} group(s) of accounts share one email address once case "
            f"and Unicode form are folded (account ids: {listed}). Merge or delete all but one "
            "account of each group, then run the migration again."
        )
    for user_id, email in rows:
        folded = canonical_email(email)
        if folded != email:
            bind.execute(sa.update(USER).where(USER.c.id == user_id).values(email=folded))


def downgrade() -> None:
    # The original spellings are gone; the folded ones are valid addresses of the same mailboxes.
    pass
