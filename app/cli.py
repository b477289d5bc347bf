"""`python -m app serve | migrate | purge | openapi | new-module NAME`, plus modules' commands
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
    from app.metrics import multiprocess_dir

    # Several workers share their metrics through one directory, set up before they start.
    with multiprocess_dir(getattr(args, "workers", 1)):
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


def _purge(args: argparse.Namespace, settings: CoreSettings) -> int:
    import asyncio

    from app.database import Database
    from app.purge import purge_jobs, purge_once

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            results = await purge_once(
                database, purge_jobs(load_modules(settings.modules)), args.batch_size, args.wait
            )
        finally:
            await database.dispose()
        if results is None:
            # Not a failure: the process holding the lock is doing this very work.
            print(
                f"gatehouse: purge: another process has been purging for over {args.wait:g}s; "
                "nothing done here",
                file=sys.stderr,
            )
            return 0
        for result in results:
            print(
                f"purged {result.name}: {result.deleted} row(s) in {result.batches} batch(es)",
                file=sys.stderr,
            )
        return 0

    return asyncio.run(run())


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


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number (got {value})")
    return number


def build_parser(settings: CoreSettings) -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="python -m app", description="Gatehouse")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="apply migrations and serve the app")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--reload", action="store_true")
    serve.add_argument("--no-migrate", action="store_true")

    migrate = commands.add_parser("migrate", help="apply every module's migrations")
    migrate.add_argument("--new", metavar="MESSAGE", help="autogenerate a revision instead")
    migrate.add_argument("--module", default="users", help="whose branch gets the revision")

    purge = commands.add_parser(
        "purge",
        help="delete now what no module needs any more (each module's retention settings)",
        description="Run every module's purge once, in batches, while no other process does "
        "(serving processes also run it every PURGE_INTERVAL seconds).",
    )
    purge.add_argument(
        "--batch-size",
        type=_positive_int,
        default=settings.purge_batch_size,
        help="rows deleted per transaction at most (default: PURGE_BATCH_SIZE, %(default)s)",
    )
    purge.add_argument(
        "--wait",
        type=float,
        default=60.0,
        help="seconds to wait while another process is purging (default: %(default)s)",
    )

    commands.add_parser("openapi", help="print the OpenAPI schema")
    new_module = commands.add_parser("new-module", help="scaffold modules/NAME")
    new_module.add_argument("name")

    handlers: dict[str, object] = {
        "serve": _serve,
        "migrate": _migrate,
        "openapi": _openapi,
        "purge": _purge,
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
