"""Alembic environment: one metadata (app.database.Base), one version folder per module."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import Any

from alembic import context
from alembic.migration import MigrationContext, MigrationInfo
from sqlalchemy import text
from sqlalchemy.engine import Connection

from app.database import Base, create_engine
from app.migrations import ADVISORY_LOCK_KEY

config = context.config
target_metadata = Base.metadata


def _record_applied(
    ctx: MigrationContext, step: MigrationInfo, heads: Collection[Any], run_args: Mapping[str, Any]
) -> None:
    # app/migrations.upgrade reports what this run applied (nothing, when another run did it).
    config.attributes.setdefault("applied", []).append(step.up_revision_id)


def _configure(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Two upgrades at once (replicas of one deploy): the second waits here until the
        # first commits, then reads the version table afresh and finds nothing to do. A
        # transaction-level lock: released by the commit, or by the connection dying.
        # Taken before `configure`, the whole upgrade runs in this one transaction.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        on_version_apply=_record_applied,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    engine = create_engine(url)
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


def run() -> None:
    connection: Any = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by app/migrations.py"
    asyncio.run(_run_async(url))


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `python -m app migrate`")
run()
