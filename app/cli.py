"""`python -m app serve | migrate | purge | openapi | new-module NAME`, plus modules' commands
(the users module adds `create-superuser`)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence

from loguru import logger

from app.loader import ModuleLoadError, load_modules
from app.logging import setup_logging
from app.settings import CoreSettings, SettingsError, load_settings


def _upgrade(settings: CoreSettings) -> bool:
    """Apply every loaded module's migrations; False (after one line) when Alembic refuses."""
    from alembic.util.exc import CommandError

    from app import migrations

    try:
        applied = migrations.upgrade(settings.database_url, settings.modules)
    except CommandError as exc:
        # Typically a revision of a module that is no longer in MODULES.
        print(
            f"gatehouse: migrate: {exc} (was this database migrated with a module that "
            f"MODULES={','.join(settings.modules)} leaves out?)",
            file=sys.stderr,
        )
        return False
    if applied:
        print(f"migrations applied: {', '.join(applied)}", file=sys.stderr)
    else:
        print("nothing to apply: the schema is at head", file=sys.stderr)
    return True


DEFAULT_GRACEFUL_TIMEOUT = 30.0


def _serve(args: argparse.Namespace, settings: CoreSettings) -> int:
    import uvicorn

    from app.database import is_sqlite

    workers: int = args.workers
    if workers > 1 and args.reload:
        print(
            "gatehouse: serve: --reload runs one process; drop --workers or --reload",
            file=sys.stderr,
        )
        return 2
    if workers > 1 and is_sqlite(settings.database_url):
        # SQLite takes one writer at a time for the whole file: N processes would queue on
        # its lock (past its busy timeout, "database is locked" and 503s), and each would
        # count login limits on its own. Several workers is the PostgreSQL + Redis profile.
        print(
            f"gatehouse: serve: --workers {workers} needs PostgreSQL (DATABASE_URL="
            "postgresql+asyncpg://…): SQLite allows one writer at a time, so several processes "
            "would wait on each other's writes; serve SQLite with --workers 1",
            file=sys.stderr,
        )
        return 2
    # Every worker reads WEB_CONCURRENCY (settings.workers): the hashing threads share the cores.
    os.environ["WEB_CONCURRENCY"] = str(workers)
    # The app (each worker, the reloader's child) reads its settings again: --host/--port must
    # reach it, or mailed links (PUBLIC_URL's default, http://HOST:PORT) name another port.
    os.environ["HOST"] = args.host
    os.environ["PORT"] = str(args.port)
    if args.no_migrate:
        os.environ["MIGRATE_ON_START"] = "false"
    setup_logging(settings)
    if workers > 1 and not settings.redis_url:
        # Here, once, before the workers start (each would otherwise say it N times).
        logger.warning(
            "{} workers without REDIS_URL: login and registration limits are counted in each "
            "process, so a client may get up to {}x the configured attempts; set REDIS_URL to "
            "share them",
            workers,
            workers,
        )
    if workers == 1 and not args.reload:
        # uvicorn re-raises the signal it shut down on, once the shutdown is complete, to the
        # handler it found: a no-op here, so a graceful stop returns 0 (as the supervisor of
        # several workers does) instead of dying of SIGTERM.
        signal.signal(signal.SIGTERM, lambda *_: None)
    from app.serving import record_serve_workers

    # A module may keep per-process state only if it knows no other process serves.
    record_serve_workers(workers)
    from app.metrics import multiprocess_dir

    # Several workers report one view of the metrics through one shared directory, set up
    # here before they start (they read PROMETHEUS_MULTIPROC_DIR when they import).
    with multiprocess_dir(workers):
        # log_config=None: our loguru set-up (app/logging.py) owns uvicorn's loggers.
        uvicorn.run(
            "app.main:app",
            host=args.host,
            port=args.port,
            workers=workers,
            reload=args.reload,
            timeout_graceful_shutdown=args.graceful_timeout,
            log_config=None,
            proxy_headers=False,
            # TCP_NODELAY on every connection: with --workers or --reload uvicorn's own socket
            # left Nagle on, and each keep-alive request waited ~40 ms (app/http_protocol.py).
            http="app.http_protocol:NoDelayHTTPProtocol",
        )
    return 0


def _migrate(args: argparse.Namespace, settings: CoreSettings) -> int:
    from app import migrations

    if args.new:
        migrations.revision(settings.database_url, settings.modules, args.module, args.new)
    else:
        if not _upgrade(settings):
            return 1
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
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {number})")
    return number


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

    serve = commands.add_parser(
        "serve",
        help="serve the app with uvicorn (one process, or several with --workers)",
        description="Serve the app with uvicorn. Development applies pending migrations at "
        "start-up; production does not (run `python -m app migrate` first).",
    )
    serve.add_argument(
        "--host", default=settings.host, help="address to bind (HOST; default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=settings.port, help="port to bind (PORT; default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=_positive_int,
        default=settings.workers,
        help="worker processes, supervised by uvicorn (WEB_CONCURRENCY; default: %(default)s)."
        " More than one needs PostgreSQL, and REDIS_URL to share rate limits",
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=DEFAULT_GRACEFUL_TIMEOUT,
        metavar="SECONDS",
        help="on SIGTERM/SIGINT, how long in-flight requests may take to finish before they are "
        "cut; then background tasks drain (up to 5 s) and pools close (default: %(default)s)",
    )
    serve.add_argument(
        "--reload",
        action="store_true",
        help="restart on code changes (development; one process only; default: off)",
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="do not apply migrations at start-up (MIGRATE_ON_START=false; they are applied "
        "by default in development only)",
    )

    migrate = commands.add_parser(
        "migrate",
        help="apply every module's pending migrations (production's deploy step)",
        description="Apply every loaded module's pending migrations. Safe when several run at "
        "once (replicas of one deploy): PostgreSQL takes an advisory lock, SQLite a file lock; "
        "the later ones wait, then find nothing to do.",
    )
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
