"""`python -m app serve | migrate | openapi | new-module NAME`, plus modules' commands
(the users module adds `create-superuser`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from app.loader import ModuleLoadError, load_modules
from app.settings import CoreSettings, SettingsError, load_settings


def _upgrade(settings: CoreSettings) -> bool:
    """Apply every loaded module's migrations; False (after one line) when Alembic refuses."""
    from alembic.util.exc import CommandError

    from app import migrations

    try:
        migrations.upgrade(settings.database_url, settings.modules)
    except CommandError as exc:
        # Typically a revision of a module that is no longer in MODULES.
        print(
            f"gatehouse: migrate: {exc} (was this database migrated with a module that "
            f"MODULES={','.join(settings.modules)} leaves out?)",
            file=sys.stderr,
        )
        return False
    return True


def _serve(args: argparse.Namespace, settings: CoreSettings) -> int:
    import uvicorn

    if not args.no_migrate and not _upgrade(settings):
        return 1
    # log_config=None: our loguru set-up (app/logging.py) owns uvicorn's loggers.
    uvicorn.run(
        "app.main:app",
        host=args.host or settings.host,
        port=args.port or settings.port,
        reload=args.reload,
        log_config=None,
        proxy_headers=False,
    )
    return 0


def _migrate(args: argparse.Namespace, settings: CoreSettings) -> int:
    from app import migrations

    if args.new:
        migrations.revision(settings.database_url, settings.modules, args.module, args.new)
    else:
        if not _upgrade(settings):
            return 1
        print("migrations applied", file=sys.stderr)
    return 0


def _openapi(_: argparse.Namespace, settings: CoreSettings) -> int:
    from app.factory import create_app

    print(json.dumps(create_app(settings).openapi(), indent=2))
    return 0


def _new_module(args: argparse.Namespace, _: CoreSettings) -> int:
    from app.scaffold import ScaffoldError, create_module

    try:
        path = create_module(args.name)
    except ScaffoldError as exc:
        print(f"gatehouse: new-module: {exc}", file=sys.stderr)
        return 1
    print(
        f"created {path} and tests/modules/{args.name}; add {args.name!r} to MODULES "
        "(e.g. in .env), run `make migrate` and `make test`",
        file=sys.stderr,
    )
    return 0


def build_parser(settings: CoreSettings) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description=(
            "Gatehouse, a FastAPI service template: serve it, migrate its database, scaffold "
            "modules, and the modules' own commands."
        ),
        epilog=(
            "Every setting (DATABASE_URL, HOST, PORT, MODULES, ...) comes from the environment "
            "or a .env file in the current folder; the README's Settings section lists them "
            "with their defaults. `python -m app COMMAND --help` describes a command's options."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations and serve the app")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--reload", action="store_true")
    serve.add_argument("--no-migrate", action="store_true")

    migrate = commands.add_parser("migrate", help="apply every module's migrations")
    migrate.add_argument("--new", metavar="MESSAGE", help="autogenerate a revision instead")
    migrate.add_argument("--module", default="users", help="whose branch gets the revision")

    commands.add_parser(
        "openapi",
        help="print the OpenAPI schema (JSON) to standard output",
        description="Print the OpenAPI schema the app serves at /openapi.json, as JSON.",
    )
    new_module = commands.add_parser(
        "new-module",
        help="scaffold a module: modules/NAME and tests/modules/NAME",
        description=(
            "Write a working module in the house style (modules/NAME: routes mounted at /NAME, "
            "service, repository, models, settings, a first migration) and its tests "
            "(tests/modules/NAME). Then add NAME to MODULES (e.g. in .env), run `make migrate` "
            "and `make test`. See docs/modules.md."
        ),
    )
    new_module.add_argument(
        "name",
        metavar="NAME",
        help="the module's name: lower_snake_case, a letter first, at most 30 characters "
        "(e.g. billing); refused if modules/NAME exists",
    )

    handlers: dict[str, object] = {
        "serve": _serve,
        "migrate": _migrate,
        "openapi": _openapi,
        "new-module": _new_module,
    }
    for loaded in load_modules(settings.modules):
        for name, command in loaded.module.commands.items():
            command.configure(commands.add_parser(name, help=command.help))
            handlers[name] = (command, loaded.settings)
    return parser, handlers


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = load_settings()
        parser, handlers = build_parser(settings)
        args = parser.parse_args(argv)
        handler = handlers[args.command]
        if isinstance(handler, tuple):
            command, module_settings = handler
            return int(command.run(args, settings, module_settings))
        return int(handler(args, settings))  # type: ignore[operator]
    except (SettingsError, ModuleLoadError) as exc:
        print(f"gatehouse: {exc}", file=sys.stderr)
        return 1
