"""`python -m app new-module NAME`: a working module in the house style, with its tests.

What it writes (`docs/modules.md` walks through it): `modules/NAME/` with its `Module`
(`__init__.py`), routes (`endpoints.py`, mounted at `/NAME`, private), rules (`service.py`),
queries (`repository.py`), a table (`models.py` and `migrations/NAME_0001`), bodies
(`schemas.py`), typed dependencies, domain errors and settings; and `tests/modules/NAME/` (a CRUD
round trip over HTTP, 403 without `NAME:write`, 401 without a token, the `user.registered`
handler). The tests run in
`make test` once NAME is in MODULES.

Templates use `{{name}}` (module name), `{{Cls}}` (CamelCase), `{{ENV}}` (env prefix) and
`{{date}}`: plain replacement, so the Python in them keeps its own braces.
"""

from __future__ import annotations

import contextlib
import datetime
import keyword
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_VALID_NAME = re.compile(r"[a-z][a-z0-9_]{0,29}")
# Paths the kernel or the users module already answers, and package names that would shadow.
_RESERVED = {"app", "modules", "tests", "health", "docs", "redoc", "openapi", "auth", "users"}


class ScaffoldError(ValueError):
    """One line for the command to print."""


_MODULE_FILES: dict[str, str] = {
    "__init__.py": '''"""{{Cls}}: one line on what this module does (replace it).

Public surface (what other modules may import): nothing yet. Whatever another module may use is
re-exported here; the rest of the package is private (import-linter enforces it).
"""

from pathlib import Path

from app.events import UserRegistered, on
from app.module import Module, RouterSpec
from modules.{{name}}.endpoints import router
from modules.{{name}}.service import on_user_registered
from modules.{{name}}.settings import {{Cls}}Settings

module = Module[{{Cls}}Settings](
    name="{{name}}",
    settings_class={{Cls}}Settings,
    # It imports `CurrentUser` from the users module's public surface.
    requires=("users",),
    # Private: mounted behind the users module's authentication (public=True opens a router).
    routers=[RouterSpec(router, prefix="/{{name}}", tags=["{{name}}"])],
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[on(UserRegistered, on_user_registered)],
    # What roles can grant (POST /roles). The write routes need the ":write" one; ":read" is
    # for routes that read beyond the caller's own items, when you add them.
    permissions={
        "{{name}}:read": "Read items",
        "{{name}}:write": "Create and change items",
    },
)

__all__ = ["module"]
''',
    "settings.py": '''"""Settings of the {{name}} module.

Environment variables `{{ENV}}*`, also read from `.env`.
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class {{Cls}}Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="{{ENV}}", env_file=".env", extra="ignore")

    # {{ENV}}LIST_LIMIT: the most items one list answer holds.
    list_limit: int = Field(default=100, gt=0, le=1000)
''',
    "models.py": '''"""Tables of the {{name}} module (its migrations/ create them)."""

import uuid
from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from app.database import Base


class {{Cls}}Item(Base):
    __tablename__ = "{{name}}_item"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    # The user's id, without a foreign key: a module owns its tables, and users may change its.
    owner_id: Mapped[uuid.UUID] = mapped_column(index=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
''',
    "schemas.py": '''"""Request and response bodies of the {{name}} module."""

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ItemCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class ItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        # SQLite hands timestamps back without a zone; they are stored in UTC.
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
''',
    "exceptions.py": '''"""Errors of the {{name}} module.

Answered as problem documents (see app/errors.py).
"""

from app.errors import ProblemError


class {{Cls}}Error(ProblemError):
    """Base of the module's client-visible errors."""


class ItemNotFound({{Cls}}Error):
    status_code = 404
    code = "NOT_FOUND"
    detail = "You have no item with this id."
''',
    "repository.py": '''"""Every query of the {{name}} module.

Flushes, never commits: the request's unit of work (app/database.py) commits once.
"""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from modules.{{name}}.models import {{Cls}}Item


async def add(db: AsyncSession, item: {{Cls}}Item) -> {{Cls}}Item:
    db.add(item)
    await db.flush()
    return item


async def get_owned(db: AsyncSession, item_id: uuid.UUID, owner_id: uuid.UUID) -> {{Cls}}Item | None:
    found = await db.scalar(
        select({{Cls}}Item).where({{Cls}}Item.id == item_id, {{Cls}}Item.owner_id == owner_id)
    )
    return found


async def list_owned(db: AsyncSession, owner_id: uuid.UUID, limit: int) -> list[{{Cls}}Item]:
    rows = await db.scalars(
        select({{Cls}}Item)
        .where({{Cls}}Item.owner_id == owner_id)
        .order_by({{Cls}}Item.created_at, {{Cls}}Item.id)
        .limit(limit)
    )
    return list(rows)
''',
    "service.py": '''"""Rules of the {{name}} module: routes call this, this calls the repository.

No HTTP here.
"""

import uuid
from datetime import UTC, datetime

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.events import UserRegistered
from modules.{{name}} import repository
from modules.{{name}}.exceptions import ItemNotFound
from modules.{{name}}.models import {{Cls}}Item
from modules.{{name}}.schemas import ItemCreate
from modules.{{name}}.settings import {{Cls}}Settings


class ItemService:
    def __init__(self, db: AsyncSession, settings: {{Cls}}Settings) -> None:
        self.db = db
        self.settings = settings

    async def create(self, owner_id: uuid.UUID, data: ItemCreate) -> {{Cls}}Item:
        item = {{Cls}}Item(
            id=uuid.uuid4(), owner_id=owner_id, title=data.title, created_at=datetime.now(UTC)
        )
        return await repository.add(self.db, item)

    async def get(self, owner_id: uuid.UUID, item_id: uuid.UUID) -> {{Cls}}Item:
        # Someone else's item is "not found" too: its existence is not the caller's business.
        item = await repository.get_owned(self.db, item_id, owner_id)
        if item is None:
            raise ItemNotFound
        return item

    async def list_mine(self, owner_id: uuid.UUID) -> list[{{Cls}}Item]:
        return await repository.list_owned(self.db, owner_id, self.settings.list_limit)


async def on_user_registered(event: UserRegistered) -> None:
    """Runs after the account is stored, with the request id bound; a failure here is logged
    and never reaches the client. Hand slow work to app.background."""
    logger.bind(user_id=str(event.user_id)).info("{{name}}: user registered")
''',
    "dependencies.py": '''"""Typed dependencies of the {{name}} module.

`Annotated` aliases that routes ask for.
"""

from typing import Annotated

from fastapi import Depends, Request

from app.database import DbSession
from app.module import settings_for
from modules.{{name}}.service import ItemService
from modules.{{name}}.settings import {{Cls}}Settings
from modules.users import RequirePermission, User

# The caller, if it holds the module's ":write" permission (a role granting it, or superuser);
# 403 otherwise. Checked live on each request: a role granted or removed holds on the next one.
ItemWriter = Annotated[User, RequirePermission("{{name}}:write")]


# async: a plain `def` dependency would hop to the thread pool on every request.
async def get_settings(request: Request) -> {{Cls}}Settings:
    return settings_for(request.app, {{Cls}}Settings)


SettingsDep = Annotated[{{Cls}}Settings, Depends(get_settings)]


async def get_item_service(db: DbSession, settings: SettingsDep) -> ItemService:
    return ItemService(db, settings)


ItemServiceDep = Annotated[ItemService, Depends(get_item_service)]
''',
    "endpoints.py": '''"""Routes of the {{name}} module: parse, call the service, shape the answer.

Mounted behind authentication (its RouterSpec is not public): every
route here has the bearer requirement in OpenAPI and answers 401 without a
token. `CurrentUser` is the same cached call as that check: asking for the
user costs nothing more. Write routes also need {{name}}:write
(`ItemWriter`, dependencies.py): 403 FORBIDDEN naming it otherwise.
"""

import uuid

from fastapi import APIRouter, status

from app.errors import ProblemDetail
from modules.{{name}}.dependencies import ItemServiceDep, ItemWriter
from modules.{{name}}.schemas import ItemCreate, ItemRead
from modules.users import CurrentUser

router = APIRouter()


# Any logged-in user.
@router.get("", summary="List my items")
async def list_items(user: CurrentUser, items: ItemServiceDep) -> list[ItemRead]:
    return [ItemRead.model_validate(item) for item in await items.list_mine(user.id)]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create an item ({{name}}:write)",
    responses={403: {"model": ProblemDetail, "description": "Without {{name}}:write"}},
)
async def create_item(body: ItemCreate, user: ItemWriter, items: ItemServiceDep) -> ItemRead:
    # No commit here: the request's unit of work (DbSession) commits once this returns.
    item = await items.create(user.id, body)
    return ItemRead.model_validate(item)


@router.get(
    "/{item_id}",
    summary="Read one of my items",
    responses={404: {"model": ProblemDetail, "description": "No such item of yours"}},
)
async def read_item(item_id: uuid.UUID, user: CurrentUser, items: ItemServiceDep) -> ItemRead:
    return ItemRead.model_validate(await items.get(user.id, item_id))
''',
    "migrations/{{name}}_0001_create_item.py": '''"""{{name}}: create the {{name}}_item table

Revision ID: {{name}}_0001
Revises:
Create Date: {{date}}
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "{{name}}_0001"
down_revision: str | None = None
# The first revision of a module starts its own branch, labelled with its name.
branch_labels: str | Sequence[str] | None = ("{{name}}",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "{{name}}_item",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_{{name}}_item")),
    )
    op.create_index(op.f("ix_{{name}}_item_owner_id"), "{{name}}_item", ["owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_{{name}}_item_owner_id"), table_name="{{name}}_item")
    op.drop_table("{{name}}_item")
''',
}

_TEST_FILES: dict[str, str] = {
    "__init__.py": "",
    "test_endpoints.py": '''"""The {{name}} module over HTTP.

A writer's round trip, 403 without the module's write permission, 401 without a token,
and its user.registered handler.
Skipped unless {{name}} is in MODULES (tests/conftest.py).
"""

import uuid

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import TEST_MODULES, LogCapture
from tests.helpers import assert_problem, bearer, grant, login, make_superuser, register

pytestmark = pytest.mark.skipif(
    "{{name}}" not in TEST_MODULES,
    reason="{{name}} is not in MODULES",
)


async def _token(client: httpx.AsyncClient, email: str) -> str:
    await register(client, email)
    token: str = (await login(client, email))["access_token"]
    return token


async def _writer(app: FastAPI, client: httpx.AsyncClient, email: str) -> str:
    """A user holding the write permission, through a role a superuser created and granted."""
    user = await register(client, email)
    await register(client, f"root-{email}")
    await make_superuser(app.state.database, f"root-{email}")
    root = bearer((await login(client, f"root-{email}"))["access_token"])
    await grant(client, root, user["id"], f"writer-{user['id'][:8]}", ["{{name}}:write"])
    token: str = (await login(client, email))["access_token"]
    return token


async def test_create_list_read_round_trip(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = bearer(await _writer(app, client, "ada@example.com"))
    assert (await client.get("/{{name}}", headers=auth)).json() == []

    created = await client.post("/{{name}}", json={"title": "first"}, headers=auth)
    assert created.status_code == 201, created.text
    item = created.json()
    assert item["title"] == "first"

    read = await client.get(f"/{{name}}/{item['id']}", headers=auth)
    assert read.status_code == 200
    assert read.json() == item
    listed = await client.get("/{{name}}", headers=auth)
    assert listed.json() == [item]


async def test_writing_needs_the_write_permission(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    plain = bearer(await _token(client, "bob@example.com"))
    assert (await client.get("/{{name}}", headers=plain)).json() == []
    refused = await client.post("/{{name}}", json={"title": "no"}, headers=plain)
    assert "'{{name}}:write'" in assert_problem(refused, 403, "FORBIDDEN")["detail"]
    writer = bearer(await _writer(app, client, "ada@example.com"))
    assert (await client.post("/{{name}}", json={"title": "yes"}, headers=writer)).status_code == 201


async def test_items_belong_to_their_owner(app: FastAPI, client: httpx.AsyncClient) -> None:
    ada = bearer(await _writer(app, client, "ada@example.com"))
    bob = bearer(await _token(client, "bob@example.com"))
    item = (await client.post("/{{name}}", json={"title": "ada's"}, headers=ada)).json()

    assert (await client.get("/{{name}}", headers=bob)).json() == []
    assert_problem(await client.get(f"/{{name}}/{item['id']}", headers=bob), 404, "NOT_FOUND")
    assert_problem(await client.get(f"/{{name}}/{uuid.uuid4()}", headers=ada), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/{{name}}"), ("POST", "/{{name}}"), ("GET", "/{{name}}/{id}")]
)
async def test_without_a_token_is_401(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(
        method, path.format(id=uuid.uuid4()), json={"title": "anonymous"}
    )
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"


async def test_invalid_body_is_422(app: FastAPI, client: httpx.AsyncClient) -> None:
    auth = bearer(await _writer(app, client, "ada@example.com"))
    assert_problem(await client.post("/{{name}}", json={"title": ""}, headers=auth), 422)


async def test_user_registered_reaches_the_handler(
    client: httpx.AsyncClient, logs: LogCapture
) -> None:
    user = await register(client, "grace@example.com")
    handled = logs.find(lambda r: r["message"] == "{{name}}: user registered")
    assert [r["user_id"] for r in handled] == [user["id"]]
''',
}


def _render(template: str, name: str) -> str:
    cls = "".join(part.capitalize() for part in name.split("_"))
    return (
        template.replace("{{name}}", name)
        .replace("{{Cls}}", cls)
        .replace("{{ENV}}", f"{name.upper()}_")
        .replace("{{date}}", datetime.date.today().isoformat())
    )


def check_name(name: str, root: Path = ROOT) -> None:
    if not _VALID_NAME.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a module name: lower_snake_case, a letter first, at most 30 characters"
        )
    if keyword.iskeyword(name) or name in _RESERVED:
        raise ScaffoldError(f"{name!r} is reserved; choose another module name")
    for existing in (root / "modules" / name, root / "tests" / "modules" / name):
        if existing.exists():
            raise ScaffoldError(f"{existing.relative_to(root)} already exists")


def create_module(name: str, root: Path = ROOT) -> Path:
    """Write modules/NAME and tests/modules/NAME under `root`; returns the module's folder."""
    check_name(name, root)
    target = root / "modules" / name
    tests = root / "tests" / "modules" / name
    for folder, files in ((target, _MODULE_FILES), (tests, _TEST_FILES)):
        for relative, template in files.items():
            path = folder / _render(relative, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_render(template, name))
    _format(target, tests)
    return target


def _format(*folders: Path) -> None:
    """Line breaks depend on the name's length: let ruff (a dev dependency) lay the files out as
    `make lint` wants them. Without ruff the files are still valid Python."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(  # noqa: S603 - our own interpreter, paths we just wrote
            [sys.executable, "-m", "ruff", "format", "--quiet", *map(str, folders)],
            capture_output=True,
            timeout=60,
            check=False,
        )
