"""Alembic, driven from code: every loaded module's migrations folder is a version location.

Each module's first revision carries `branch_labels=("<module>",)`; upgrading to `heads`
applies every module's branch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.database import ensure_sqlite_folder
from app.loader import load_modules

SCRIPT_LOCATION = Path(__file__).parent / "alembic"


def alembic_config(database_url: str, module_names: Sequence[str]) -> Config:
    loaded = load_modules(module_names)  # also imports the models into Base.metadata
    locations = [str(m.module.migrations) for m in loaded if m.module.migrations is not None]
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.set_main_option("version_locations", " ".join(locations))
    config.set_main_option("path_separator", "space")
    return config


def upgrade(database_url: str, module_names: Sequence[str], revision: str = "heads") -> None:
    ensure_sqlite_folder(database_url)
    command.upgrade(alembic_config(database_url, module_names), revision)


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
