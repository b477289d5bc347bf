"""Async SQLAlchemy: one engine per app (opened in the lifespan), one session per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic autogenerate and every backend agree.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base shared by every module's models (one metadata for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; foreign keys are off by default in SQLite;
    # the busy timeout makes a writer wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def ensure_sqlite_folder(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str) -> AsyncEngine:
    """The one way an engine is made (the app's and the migrations')."""
    ensure_sqlite_folder(url)
    # hide_parameters: a database error's text would otherwise quote every bound value
    # (`[parameters: (…, 'ada@…', '$argon2id$…')]`), and tracebacks go to the log.
    if is_sqlite(url):
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            hide_parameters=True,
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        # pool_pre_ping: a restarted database server does not cost the next request a 500.
        engine = create_async_engine(url, pool_pre_ping=True, pool_timeout=5, hide_parameters=True)
    return engine


class Database:
    """The engine and its session factory. Created and disposed by the app's lifespan."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Reads the app's database itself: a `def` dependency here would cost every request a
    # thread-pool hop.
    async with get_database(request).sessionmaker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_session)]
