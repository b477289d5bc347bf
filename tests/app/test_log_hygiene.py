"""What the real log sinks write: no password hash or SQL parameter from a database error,
no raw control character from a request (JSON and pretty formats, SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.database import DbSession, create_engine
from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import assert_problem, register

LOG_FORMATS = ["json", "pretty"]


@asynccontextmanager
async def _serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def _app_with_a_failing_insert(settings: CoreSettings, log_format: str) -> FastAPI:
    app = create_app(settings.model_copy(update={"log_format": log_format}))

    @app.post("/test/duplicate-user")
    async def duplicate_user(session: DbSession) -> None:
        # A raw insert of a row that already exists: the database refuses it, and the error
        # (with a traceback, to the log) is about a statement whose parameters hold the hash.
        row = (await session.execute(text('SELECT * FROM "user"'))).mappings().one()
        columns = ", ".join(f'"{name}"' for name in row)
        values = ", ".join(f":{name}" for name in row)
        insert = f'INSERT INTO "user" ({columns}) VALUES ({values})'  # noqa: S608 - our columns
        await session.execute(text(insert), dict(row))

    return app


async def _stored_hash(database_url: str) -> str:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        hashed = (await connection.execute(text('SELECT hashed_password FROM "user"'))).scalar_one()
    await engine.dispose()
    return str(hashed)


@pytest.mark.parametrize("log_format", LOG_FORMATS)
async def test_database_error_logs_no_hash_and_no_parameters(
    settings: CoreSettings, log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    email = f"dup-{uuid.uuid4().hex[:8]}@example.com"
    app = _app_with_a_failing_insert(settings, log_format)
    async with _serve(app) as client:
        await register(client, email)
        response = await client.post("/test/duplicate-user", headers={"X-Request-ID": "dup-1"})
    assert_problem(response, 500, "INTERNAL_ERROR")
    hashed = await _stored_hash(settings.database_url)
    assert hashed.startswith("$argon2")

    written = capsys.readouterr().err
    # Not vacuous: the unhandled error and its traceback did reach the log.
    assert "unhandled exception" in written and "IntegrityError" in written, written
    assert hashed not in written
    assert "$argon2" not in written
    assert "[parameters:" not in written
    assert email not in written  # neither as a parameter nor in PostgreSQL's "Key (…)=(…)"


@pytest.mark.parametrize("log_format", LOG_FORMATS)
async def test_control_characters_in_a_request_reach_no_log_line_raw(
    settings: CoreSettings, log_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(settings.model_copy(update={"log_format": log_format}))
    async with _serve(app) as client:
        # ESC [2J clears a terminal; BEL, C1 CSI (U+009B) and DEL are controls too.
        response = await client.get("/nope%1B%5B2J%07%C2%9B%7Fend")
    assert response.status_code == 404
    written = capsys.readouterr().err
    assert "/nope" in written, written
    for raw in ("\x1b", "\x07", "\x9b", "\x7f"):
        assert raw not in written, repr(written)
    if log_format == "pretty":  # JSON escapes them by itself; the pretty line must say them
        assert "/nope\\x1b[2J\\x07\\x9b\\x7fend" in written, written
