"""Fixtures of the users module's tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _postgres_admin
from tests.services import POSTGRES_URL, require_postgres


@pytest.fixture(params=["sqlite", "postgresql"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
        return
    require_postgres()
    name = f"gatehouse_migration_{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(_postgres_admin, POSTGRES_URL, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        statement = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        await asyncio.to_thread(_postgres_admin, POSTGRES_URL, statement)
