"""`exclusive(database, name)`: at most one holder at a time across every process that shares the
database, for jobs that must not run twice at once (the scheduled purge, on every worker).

PostgreSQL: a session-level advisory lock on a connection of its own, held for the block
(the server releases it if the process dies). SQLite: an `flock` on a file beside the database
file (the kernel releases it if the process dies; SQLite's writers share one machine anyway).
An in-memory SQLite database belongs to one process: a process-local lock is enough.

A holder that cannot get the lock at once gets `False` (after waiting up to `wait` seconds):
the caller skips its run, another process is doing the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.database import Database, is_sqlite

RETRY_SECONDS = 0.2
# Names held by this process (in-memory SQLite only).
_held_here: set[str] = set()


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for `pg_try_advisory_lock` (the same in every process)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


async def _poll(try_once: Callable[[], Awaitable[bool]], wait: float) -> bool:
    """Try at once, then every RETRY_SECONDS until `wait` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        if await try_once():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(RETRY_SECONDS, max(0.0, deadline - loop.time())))


@asynccontextmanager
async def _postgres_lock(database: Database, name: str, wait: float) -> AsyncIterator[bool]:
    key = advisory_key(name)
    async with database.engine.connect() as connection:
        # Autocommit: the lock belongs to the session, no transaction stays open meanwhile.
        conn = await connection.execution_options(isolation_level="AUTOCOMMIT")

        async def try_once() -> bool:
            return bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))

        acquired = await _poll(try_once, wait)
        try:
            yield acquired
        finally:
            if acquired:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                except BaseException:
                    # A connection that could not unlock must not go back to the pool still
                    # holding the lock: closing it releases the lock server-side.
                    await connection.invalidate()
                    raise


def _lock_file(url: str, name: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(f"{database}.{name}.lock")


@asynccontextmanager
async def _file_lock(path: Path, wait: float) -> AsyncIterator[bool]:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:

        async def try_once() -> bool:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        acquired = await _poll(try_once, wait)
        try:
            yield acquired
        finally:
            if acquired:
                with suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@asynccontextmanager
async def _local_lock(name: str, wait: float) -> AsyncIterator[bool]:
    async def try_once() -> bool:
        if name in _held_here:
            return False
        _held_here.add(name)
        return True

    acquired = await _poll(try_once, wait)
    try:
        yield acquired
    finally:
        if acquired:
            _held_here.discard(name)


@asynccontextmanager
async def exclusive(database: Database, name: str, wait: float = 0.0) -> AsyncIterator[bool]:
    """Yields True while this process holds the lock `name`, False if another holds it."""
    if not is_sqlite(database.url):
        async with _postgres_lock(database, name, wait) as acquired:
            yield acquired
        return
    path = _lock_file(database.url, name)
    if path is None:
        async with _local_lock(name, wait) as acquired:
            yield acquired
        return
    async with _file_lock(path, wait) as acquired:
        yield acquired
