"""Alembic, driven from code: every loaded module's migrations folder is a version location.

Each module's first revision carries `branch_labels=("<module>",)`; upgrading to `heads`
applies every module's branch.

Two upgrades at once (replicas of a deploy, each running `python -m app migrate`; development
workers migrating at start-up) never race: on PostgreSQL the upgrade holds a transaction-level
advisory lock (`app/alembic/env.py`), on SQLite an exclusive lock on a file beside the
database. The second one waits, then finds the schema at head and does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from app.database import Database, ensure_sqlite_folder
from app.loader import load_modules

SCRIPT_LOCATION = Path(__file__).parent / "alembic"
MIGRATE_COMMAND = "python -m app migrate"
VERSION_TABLE = "alembic_version"  # Alembic's default, which env.py keeps
# pg_advisory_xact_lock's key: any constant 64-bit number, the same in every process.
ADVISORY_LOCK_KEY = 0x6761746568_6F7573  # "gatehous"


def alembic_config(database_url: str, module_names: Sequence[str]) -> Config:
    loaded = load_modules(module_names)  # also imports the models into Base.metadata
    locations = [str(m.module.migrations) for m in loaded if m.module.migrations is not None]
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    return config


def upgrade(database_url: str, module_names: Sequence[str], revision: str = "heads") -> list[str]:
    """Apply the pending revisions; returns those this call applied, oldest first."""
    ensure_sqlite_folder(database_url)
    config = alembic_config(database_url, module_names)
    with _sqlite_file_lock(database_url):
        command.upgrade(config, revision)
    return list(config.attributes.get("applied", []))


@contextlib.contextmanager
def _sqlite_file_lock(database_url: str) -> Iterator[None]:
    """SQLite: one upgrade at a time per database file (Alembic's SQLite DDL is not one
    transaction). PostgreSQL locks inside the database instead (env.py)."""
    parsed = make_url(database_url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock; run one `migrate` at a time
        yield
        return
    with open(f"{parsed.database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class SchemaStatus:
    """Where the database stands against the migrations of the loaded modules."""

    pending: tuple[str, ...]  # revision ids not applied yet, oldest first
    unknown: tuple[str, ...]  # applied revisions no loaded module knows (a module left out?)

    @property
    def at_head(self) -> bool:
        return not self.pending and not self.unknown

    def describe(self) -> str:
        """One line for a log or a readiness answer: what is missing and what to run."""
        if self.unknown:
            unknown = ", ".join(self.unknown)
            return (
                f"the database carries revisions no loaded module knows ({unknown}): "
                "was it migrated with a module MODULES leaves out?"
            )
        if self.pending:
            return (
                f"{len(self.pending)} pending migration(s): {', '.join(self.pending)}; "
                f"run `{MIGRATE_COMMAND}`"
            )
        return "at head"


class SchemaInspector:
    """Reads the database's applied revisions and compares them with the scripts, which are
    parsed once (at start-up), so each check is one small SELECT."""

    def __init__(self, database_url: str, module_names: Sequence[str]) -> None:
        self.script = ScriptDirectory.from_config(alembic_config(database_url, module_names))
        self._all = [r.revision for r in reversed(list(self.script.walk_revisions()))]

    async def check(self, database: Database) -> SchemaStatus:
        async with database.engine.connect() as connection:
            return await connection.run_sync(self.status)

    def status(self, connection: Connection) -> SchemaStatus:
        """Synchronous (run it with `AsyncConnection.run_sync`)."""
        # Read directly: MigrationContext would log two INFO lines per readiness probe.
        applied_heads: tuple[str, ...] = ()
        if inspect(connection).has_table(VERSION_TABLE):
            rows = connection.execute(text("SELECT version_num FROM alembic_version"))
            applied_heads = tuple(rows.scalars())
        known = set(self._all)
        unknown = tuple(h for h in applied_heads if h not in known)
        applied: set[str] = set()
        stack = [h for h in applied_heads if h in known]
        while stack:
            revision = self.script.get_revision(stack.pop())
            if revision is None or revision.revision in applied:
                continue
            applied.add(revision.revision)
            stack.extend(_ancestors(revision.down_revision))
            stack.extend(_ancestors(revision.dependencies))
        pending = tuple(r for r in self._all if r not in applied)
        return SchemaStatus(pending=pending, unknown=unknown)


def _ancestors(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def revision(database_url: str, module_names: Sequence[str], module: str, message: str) -> None:
    """Autogenerate a revision on `module`'s branch (`make migration MODULE=… MSG=…`)."""
    config = alembic_config(database_url, module_names)
    loaded = {m.module.name: m.module for m in load_modules(module_names)}
    folder = loaded[module].migrations
    assert folder is not None, f"module {module!r} has no migrations folder"
    first = not any(folder.glob("*.py"))
    command.revision(
        config,
        message=message,
        autogenerate=True,
        # A module's first revision starts its own branch, labelled with its name.
        head="base" if first else f"{module}@head",
        branch_label=module if first else None,
        version_path=str(folder),
    )
