"""`create_app()`: where every request's path starts.

Request flow: `RequestContextMiddleware` (request id, access line, body limit, last-resort 500)
→ FastAPI routing → the module routers mounted below (see each `modules/<name>/__init__.py`),
every private one behind the authenticating module's `current user` dependency (`app/auth.py`)
→ errors are turned into problem+json by `app/errors.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Security
from loguru import logger
from pydantic_settings import BaseSettings

from app import docs, health, metrics, migrations, purge
from app.auth import authenticates_itself, has_security_scheme, nobody
from app.background import BackgroundTasks
from app.database import Database
from app.errors import install_error_handlers
from app.events import EventHub
from app.loader import LoadedModule, ModuleLoadError, check_permissions, load_modules
from app.logging import setup_logging
from app.middleware import RequestContextMiddleware
from app.module import ModuleContext
from app.openapi import install_openapi, operation_id
from app.settings import CoreSettings, load_settings

TITLE = "Gatehouse"
VERSION = "0.1.0"


def create_app(
    settings: CoreSettings | None = None,
    module_settings: Mapping[str, BaseSettings] | None = None,
) -> FastAPI:
    """Build the app. Nothing is opened here: the lifespan opens and closes every resource."""
    settings = settings or load_settings()
    setup_logging(settings)
    loaded = load_modules(settings.modules, module_settings)
    events = EventHub(s for item in loaded for s in item.module.subscriptions)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.migrates_on_start:
            await _migrate_on_start(settings)
        database = Database(settings.database_url)
        app.state.database = database
        app.state.schema = migrations.SchemaInspector(settings.database_url, settings.modules)
        if not settings.migrates_on_start:
            await _warn_if_schema_behind(app.state.schema, database)
        background = app.state.background = BackgroundTasks()
        async with AsyncExitStack() as stack:
            stack.push_async_callback(database.dispose)
            for item in loaded:
                if item.module.lifespan is not None:
                    context = ModuleContext(
                        app=app,
                        core=settings,
                        settings=item.settings,
                        database=database,
                        events=events,
                    )
                    await stack.enter_async_context(item.module.lifespan(context))
            # Entered last, so it stops first: no purge runs while modules close.
            await stack.enter_async_context(
                purge.scheduled(
                    database,
                    purge.purge_jobs(loaded),
                    settings.purge_interval,
                    settings.purge_batch_size,
                )
            )
            logger.info(
                "started: environment={} modules={}",
                settings.environment,
                ",".join(m.module.name for m in loaded),
            )
            try:
                yield
                logger.info("stopping")
                # Before any module closes: background work may still need all of them.
                await background.drain()
            finally:
                # Several workers: this one's live gauges (queue lengths) leave the view.
                metrics.mark_this_process_dead()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        description="User accounts and resilient outbound calls, module by module.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json" if settings.serve_docs else None,  # DOCS_ENABLED
        # No 307 to "http://<Host header>/path" for "/path/": a client would re-send the body
        # (a password) to whichever host the request named. "/path/" is a plain 404.
        redirect_slashes=False,
        generate_unique_id_function=operation_id,
        openapi_tags=_openapi_tags(loaded),
    )
    app.state.settings = settings
    app.state.events = events
    app.state.module_settings = {m.module.name: m.settings for m in loaded}
    app.state.settings_by_class = {m.module.settings_class: m.settings for m in loaded}
    app.state.readiness_checks = {}
    # Every permission the loaded modules declare (app/permissions.py; checked by the loader).
    app.state.permissions = check_permissions([m.module for m in loaded])

    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, settings=settings)
    app.include_router(health.router)
    if settings.serve_metrics:  # METRICS_ENABLED
        token = settings.metrics_token
        app.state.metrics_token = None if token is None else token.get_secret_value()
        # Added last, so outermost: it sees every answer, those of the layer above included.
        app.add_middleware(metrics.MetricsMiddleware)
        # Public by declaration (like health): a scraper has no user; METRICS_TOKEN guards it.
        app.include_router(metrics.router)
    _mount_modules(app, loaded)
    docs.install_docs(app, TITLE)
    install_openapi(app)
    return app


HEALTH_TAG = {"name": "health", "description": "Liveness and readiness probes (no token)."}


def _openapi_tags(loaded: list[LoadedModule]) -> list[dict[str, Any]]:
    """The modules' tags in their order (MODULES order, dependencies first), health last."""
    tags = [
        {"name": name, "description": description}
        for item in loaded
        for name, description in item.module.tags.items()
    ]
    return [*tags, HEALTH_TAG]


async def _migrate_on_start(settings: CoreSettings) -> None:
    """Development (MIGRATE_ON_START): however the app is started (`make run`, `python -m app
    serve`, bare `uvicorn app.main:app --reload`), a fresh checkout gets its schema. Alembic's
    env runs its own event loop: in a thread. Concurrent starts are safe (app/migrations.py)."""
    from alembic.util.exc import CommandError

    try:
        applied = await asyncio.to_thread(
            migrations.upgrade, settings.database_url, settings.modules
        )
    except CommandError as exc:
        logger.error(
            "migrations at start-up failed: {} (was this database migrated with a module that "
            "MODULES={} leaves out?)",
            exc,
            ",".join(settings.modules),
        )
        raise
    if applied:
        logger.info(
            "migrations applied at start-up (MIGRATE_ON_START, on in development): {}",
            ", ".join(applied),
        )


async def _warn_if_schema_behind(inspector: migrations.SchemaInspector, database: Database) -> None:
    """Production does not migrate itself: say at once when the schema is behind the code
    (readiness answers 503 meanwhile). The database being down is readiness's to report."""
    try:
        status = await asyncio.wait_for(inspector.check(database), 5)
    except Exception as exc:
        logger.warning("schema version not checked at start-up: {}", type(exc).__name__)
        return
    if not status.at_head:
        logger.error("database schema is behind the code: {}", status.describe())


def _current_user_dependency(loaded: list[LoadedModule]) -> Callable[..., Any]:
    """The authenticating module's `current user` dependency (the loader allows one at most)."""
    for item in loaded:
        provider = item.module.auth
        if provider is not None:
            if not has_security_scheme(provider):
                raise ModuleLoadError(
                    f"module {item.module.name!r}: its auth dependency has no security scheme "
                    "(OpenAPI would not show the bearer requirement)"
                )
            return provider
    return nobody


def _mount_modules(app: FastAPI, loaded: list[LoadedModule]) -> None:
    # Security, not Depends: the same cached call as a route's own `CurrentUser` (no scopes),
    # and OpenAPI shows the scheme on every private operation.
    app.state.auth_dependency = _current_user_dependency(loaded)
    auth = app.state.auth_dependency
    private = [Security(auth)]
    for item in loaded:
        module = item.module
        for spec in module.routers:
            # Authenticated by default: only what a module declares public is public. A router
            # whose every route asks for the current user already authenticates each request.
            guarded = not spec.public and not authenticates_itself(spec.router, auth)
            app.include_router(
                spec.router,
                prefix=spec.prefix,
                tags=list(spec.tags) or [module.name],
                dependencies=private if guarded else [],
            )
        for check_name, check in module.readiness_checks.items():
            app.state.readiness_checks[f"{module.name}.{check_name}"] = check
