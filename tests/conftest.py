"""Shared fixtures: a migrated database per test, the app with its lifespan, an HTTP client.

The suite runs on SQLite by default (a fresh copy of a migrated template file per test). With
TEST_DATABASE_URL set (`make test-postgres`) the same tests run on PostgreSQL, every table
emptied before each test.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dotenv import dotenv_values
from fastapi import FastAPI
from loguru import logger
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from app import migrations
from app.database import Base, create_engine
from app.factory import create_app
from app.settings import CoreSettings

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODULES = "users,integrations"


def _enabled_modules() -> list[str]:
    """The modules the suite loads: MODULES from the environment, else from `.env`, else the
    default. A module enabled there has its tests (tests/modules/<name>/) run by `make test`."""
    value = os.environ.get("MODULES") or dotenv_values(ROOT / ".env").get("MODULES")
    return [name.strip() for name in (value or DEFAULT_MODULES).split(",") if name.strip()]


TEST_MODULES = _enabled_modules()

# Module settings come from the environment: keep the developer's own out of the tests.
for _name in list(os.environ):
    if _name in {
        "DATABASE_URL",
        "SECRET_KEY",
        "MODULES",
        "MAIL_URL",
        "PWNED_PASSWORDS_URL",
        "REDIS_URL",
        "LOG_FORMAT",
        "LOG_LEVEL",
    }:
        del os.environ[_name]
os.environ["ENVIRONMENT"] = "test"

# aiosmtpd (the tests' SMTP server, tests/upstreams.py) logs every SMTP session at INFO from its
# own thread, often after the test that started it has ended, so pytest cannot capture the lines
# and they break up `make test`'s progress output. Its warnings and errors still show.
for _name in ("mail.log", "mail.debug"):
    logging.getLogger(_name).setLevel(logging.WARNING)


def _postgres_admin(url: str, statement: str) -> None:
    """Run CREATE/DROP DATABASE on the server of `url` (outside a transaction)."""
    import asyncio

    async def run() -> None:
        engine = create_engine(url)
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(statement))
        await engine.dispose()

    asyncio.run(run())


@pytest.fixture(scope="session")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Migrate once per session; each test then starts from this state."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if server_url:
        from tests.services import require_postgres

        require_postgres()
        # A database of this run's own, so parallel runs on one server never meet.
        name = f"gatehouse_test_{os.getpid()}"
        _postgres_admin(server_url, f'DROP DATABASE IF EXISTS "{name}"')
        _postgres_admin(server_url, f'CREATE DATABASE "{name}"')
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        migrations.upgrade(url, TEST_MODULES)
        yield url
        _postgres_admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrations.upgrade(url, TEST_MODULES)
    with sqlite3.connect(path) as connection:  # fold the WAL into the file before copying it
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    yield url


async def _empty_all_tables(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as connection:
        # Only tables that exist: a module's models may be imported without it being enabled.
        existing = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name in existing)
        await connection.execute(text(f"TRUNCATE {names} CASCADE"))
    await engine.dispose()


@pytest.fixture
async def database_url(template_database: str, tmp_path: Path) -> str:
    parsed = make_url(template_database)
    if parsed.get_backend_name() != "sqlite":
        await _empty_all_tables(template_database)
        return template_database
    assert parsed.database is not None
    target = tmp_path / "test.db"
    shutil.copyfile(parsed.database, target)
    return f"sqlite+aiosqlite:///{target}"


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> CoreSettings:
    return CoreSettings(
        environment="test",
        database_url=database_url,
        secret_key=TEST_SECRET,
        data_dir=tmp_path / "data",
        modules=TEST_MODULES,
        log_format="json",
    )


@pytest.fixture
def app(settings: CoreSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over the ASGI app, with the app's lifespan run around it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c


class LogCapture:
    """Every log line written while the test runs, as the JSON objects production writes."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def sink(self, message: Any) -> None:
        record = message.record
        payload = {"level": record["level"].name, "message": record["message"]}
        payload.update({k: v for k, v in record["extra"].items() if v is not None})
        if record["exception"] is not None:
            payload["exception"] = repr(record["exception"].value)
        self.lines.append(json.dumps(payload, default=str))

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def find(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        return [r for r in self.records if predicate(r)]


@pytest.fixture
def logs(app: FastAPI) -> Iterator[LogCapture]:
    """Depends on `app`: create_app() resets loguru's sinks, so this one is added after it."""
    capture = LogCapture()
    sink_id = logger.add(capture.sink, level="DEBUG", format="{message}")
    yield capture
    logger.remove(sink_id)


def backend_neutral_runs_here(ci_run: str, on_postgres: bool, split: bool) -> bool:
    """Whether a `backend_neutral` test runs in this run. Alone, `make test` runs them all and
    `make test-postgres` none. With SPLIT_BACKEND_NEUTRAL=1 (`.ci/run`, which runs the two
    suites side by side) each runs in the suite its marker names (`ci_run`, "sqlite" unless
    said), so that the two suites take about as long as each other."""
    if not split:
        return not on_postgres
    return (ci_run == "postgres") == on_postgres


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test-postgres` exists to run the tests whose outcome depends on the database
    backend on PostgreSQL. A test marked `backend_neutral` does not: its servers use a database
    of their own choosing (a SQLite file, or a throwaway PostgreSQL database it makes itself),
    or it checks only the API's shape (generated clients). It runs in one of the two runs
    (`backend_neutral_runs_here`), which keeps CI within its time."""
    on_postgres = bool(os.environ.get("TEST_DATABASE_URL"))
    split = os.environ.get("SPLIT_BACKEND_NEUTRAL") == "1"
    for item in items:
        marker = item.get_closest_marker("backend_neutral")
        if marker is None:
            continue
        ci_run = str(marker.kwargs.get("ci_run", "sqlite"))
        if not backend_neutral_runs_here(ci_run, on_postgres, split):
            other = "make test" if on_postgres else "make test-postgres"
            where = f"{other} runs it" + (" (SPLIT_BACKEND_NEUTRAL=1)" if split else "")
            item.add_marker(pytest.mark.skip(reason=f"backend_neutral: {where}"))
