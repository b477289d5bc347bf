"""`app.locks.exclusive`: one holder per lock name and database, and only per database: two
services (or two test runs) with databases of their own on one server never wait on each
other. On PostgreSQL that holds because an advisory lock's tag includes the current database
(the key alone is not server-wide); on SQLite the lock is a file beside the database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.database import Database
from app.locks import exclusive
from tests.app.processes import fresh_postgres_database
from tests.services import require_postgres

# Each test picks its own databases: one run (`make test`) is enough.
pytestmark = pytest.mark.backend_neutral


async def _held_while(holder: Database, other: Database) -> tuple[bool, bool]:
    """Hold `purge` on `holder`; meanwhile try it on `holder` again and on `other`."""
    async with exclusive(holder, "purge") as acquired:
        assert acquired
        async with exclusive(holder, "purge") as again:
            same = again
        async with exclusive(other, "purge") as elsewhere:
            other_database = elsewhere
    return same, other_database


async def test_sqlite_lock_is_per_database_file(tmp_path: Path) -> None:
    one = Database(f"sqlite+aiosqlite:///{tmp_path / 'one.db'}")
    two = Database(f"sqlite+aiosqlite:///{tmp_path / 'two.db'}")
    try:
        assert await _held_while(one, two) == (False, True)
    finally:
        await one.dispose()
        await two.dispose()


@pytest.fixture
def two_postgres_databases() -> Iterator[tuple[str, str]]:
    server = require_postgres()
    with (
        fresh_postgres_database(server, "gatehouse_lock_a") as a_url,
        fresh_postgres_database(server, "gatehouse_lock_b") as b_url,
    ):
        yield a_url, b_url


async def test_postgres_lock_is_per_database_not_per_server(
    two_postgres_databases: tuple[str, str],
) -> None:
    a, b = (Database(url) for url in two_postgres_databases)
    try:
        assert await _held_while(a, b) == (False, True)
    finally:
        await a.dispose()
        await b.dispose()
