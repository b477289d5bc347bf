"""A database the migrations have not reached: readiness names what is pending, and a request
that needs a missing table answers 503 with the reason in the log (on SQLite and PostgreSQL,
whose drivers report a missing table differently)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from loguru import logger

from app import migrations
from app.factory import create_app
from app.settings import CoreSettings
from tests.app.processes import fresh_postgres_database
from tests.conftest import TEST_MODULES, TEST_SECRET, LogCapture
from tests.helpers import PASSWORD
from tests.services import require_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/empty.db"
        return
    with fresh_postgres_database(require_postgres(), "gatehouse_schema_behind") as url:
        yield url


async def test_missing_tables_answer_503_and_the_log_names_the_migrations(
    empty_database: str, tmp_path: Path
) -> None:
    settings = CoreSettings(
        environment="test",
        database_url=empty_database,
        secret_key=TEST_SECRET,
        data_dir=tmp_path / "data",
        modules=TEST_MODULES,
        log_format="json",
    )
    app = create_app(settings)
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG", format="{message}")
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                ready = await client.get("/health/ready")
                assert ready.status_code == 503
                assert "users_0001" in ready.json()["checks"]["schema"]["detail"]["pending"]

                refused = await client.post(
                    "/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
                )
                assert refused.status_code == 503
                assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
                assert refused.headers["retry-after"] == "5"
                request_id = refused.headers["x-request-id"]
                errors = capture.find(
                    lambda r: r["level"] == "ERROR" and r.get("request_id") == request_id
                )
                assert [e["message"].split(":")[0] for e in errors] == [
                    "database schema is behind the code"
                ], errors
                assert "users_0001" in errors[0]["message"]
                assert "python -m app migrate" in errors[0]["message"]

                # A readiness probe adds no log line but its access line.
                probe = await client.get("/health/ready")
                probe_id = probe.headers["x-request-id"]
                assert len(capture.find(lambda r: r.get("request_id") == probe_id)) == 1

                # Migrated while running: ready and serving, no restart.
                await asyncio.to_thread(migrations.upgrade, empty_database, TEST_MODULES)
                assert (await client.get("/health/ready")).status_code == 200
                registered = await client.post(
                    "/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
                )
                assert registered.status_code == 201
    finally:
        logger.remove(sink)
    # At start-up the app said so too (production does not migrate by itself).
    assert capture.find(lambda r: r["message"].startswith("database schema is behind the code"))
