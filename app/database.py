"""Async SQLAlchemy: one engine per app (opened in the lifespan), one unit of work per request.

The unit of work is `get_session` (`DbSession`): it opens the request's session, and when the
route has returned without error it commits ONCE, then hands the events collected during the
request to the hub. It is a function-scoped dependency: FastAPI exits it right after the
endpoint returned (the answer is built but not sent), so a failed commit becomes a problem
answer, never a 200 whose write was lost. On any error it rolls back and nothing is published,
unless the error is `CommitsBeforeRaising` (a domain error whose writes must stand, such as
refresh-token reuse ending its session). Services and repositories flush, never commit;
background jobs and CLI commands open their own `unit_of_work`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol

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

from app.events import EventHub, deliver_pending, discard_pending

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


def _sqlite_savepoint_inside_begin(connection: Any, _name: str) -> None:
    # The sqlite3 driver opens a transaction (BEGIN) only before INSERT/UPDATE/DELETE. A
    # SAVEPOINT issued first would open the transaction itself, and its RELEASE would COMMIT
    # it: a savepoint's writes would be committed at once, outside the unit of work. So a
    # savepoint always nests inside a BEGIN. (Reads keep the driver's behaviour: no snapshot
    # is held before the first write, so a later write never fails on a stale snapshot.)
    driver = connection.connection.driver_connection
    if not driver.in_transaction:
        connection.exec_driver_sql("BEGIN")


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
        event.listen(engine.sync_engine, "savepoint", _sqlite_savepoint_inside_begin)
    else:
        # pool_pre_ping: a restarted database server does not cost the next request a 500.
        engine = create_async_engine(url, pool_pre_ping=True, pool_timeout=5, hide_parameters=True)
    return engine


class CommitListener(Protocol):
    """Told around every unit of work's commit (a module's cache that must follow writes).
    `before_commit` runs after the last flush; raising there rolls the transaction back.
    `after_commit` runs once it has committed, before the response is sent."""

    async def before_commit(self, session: AsyncSession) -> None: ...

    async def after_commit(self, session: AsyncSession) -> None: ...

    def discard(self, session: AsyncSession) -> None: ...


class Database:
    """The engine and its session factory. Created and disposed by the app's lifespan."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        self.commit_listeners: list[CommitListener] = []

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


class CommitsBeforeRaising:
    """Mix into an exception whose writes must stand although the request fails: the unit of
    work commits (and publishes what was collected), then the error answers. Example: a reused
    refresh token ends its session and answers 401; the ended session must stay ended.
    Any other exception rolls the whole request back."""


@asynccontextmanager
async def unit_of_work(
    database: Database, events: EventHub | None = None
) -> AsyncIterator[AsyncSession]:
    """One session, one transaction: committed at the block's end when it exits without error
    (or with a `CommitsBeforeRaising` error), rolled back otherwise. The events published into
    the session (`app.events.publish_after_commit`) reach `events` only after the commit."""
    listeners = database.commit_listeners
    async with database.sessionmaker() as session:
        try:
            yield session
        except BaseException as exc:
            if isinstance(exc, CommitsBeforeRaising):
                await _commit(session, listeners)
                await _committed(session, listeners, events)
            else:
                _discard(session, listeners)
                await session.rollback()
            raise
        await _commit(session, listeners)
        await _committed(session, listeners, events)


async def _commit(session: AsyncSession, listeners: list[CommitListener]) -> None:
    try:
        if listeners:
            if session.new or session.dirty or session.deleted:
                await session.flush()  # so listeners see every write of the transaction
            for listener in listeners:
                await listener.before_commit(session)
        await session.commit()
    except BaseException:
        # A failed COMMIT (a deferred constraint) can leave the transaction open on the
        # connection (SQLite does), and the pool would hand it, writes and all, to the next
        # request: end it here. Nothing collected is published.
        _discard(session, listeners)
        await session.rollback()
        raise


async def _committed(
    session: AsyncSession, listeners: list[CommitListener], events: EventHub | None
) -> None:
    for listener in listeners:
        await listener.after_commit(session)
    await deliver_pending(session, events)


def _discard(session: AsyncSession, listeners: list[CommitListener]) -> None:
    discard_pending(session)
    for listener in listeners:
        listener.discard(session)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    # Reads the app's database itself: a `def` dependency here would cost every request a
    # thread-pool hop.
    events: EventHub | None = getattr(request.app.state, "events", None)
    async with unit_of_work(get_database(request), events) as session:
        yield session


# scope="function": the exit (the commit) runs before the answer is sent, not after it.
# Every route and dependency must take the session through this alias: FastAPI caches a
# dependency per scope, so a plain Depends(get_session) would open a second unit of work.
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
