"""`create_app()`: where every request's path starts.

Request flow: `RequestContextMiddleware` (request id, access line, body limit, last-resort 500)
→ FastAPI routing → the module routers mounted below (see each `modules/<name>/__init__.py`),
every private one behind the authenticating module's `current user` dependency (`app/auth.py`)
→ errors are turned into problem+json by `app/errors.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Security
from loguru import logger
from pydantic_settings import BaseSettings

from app import docs, health
from app.auth import has_security_scheme, nobody
from app.background import BackgroundTasks
from app.database import Database
from app.errors import install_error_handlers
from app.events import EventHub
from app.loader import LoadedModule, ModuleLoadError, check_permissions, load_modules
from app.logging import setup_logging
from app.middleware import RequestContextMiddleware
from app.module import ModuleContext
from app.openapi import install_openapi
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
        database = Database(settings.database_url)
        app.state.database = database
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
            logger.info(
                "started: environment={} modules={}",
                settings.environment,
                ",".join(m.module.name for m in loaded),
            )
            yield
            logger.info("stopping")
            # Before any module closes: background work may still need all of them.
            await background.drain()

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
    _mount_modules(app, loaded)
    docs.install_docs(app, TITLE)
    install_openapi(app)
    return app


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
    private = [Security(app.state.auth_dependency)]
    for item in loaded:
        module = item.module
        for spec in module.routers:
            # Authenticated by default: only what a module declares public is public.
            app.include_router(
                spec.router,
                prefix=spec.prefix,
                tags=list(spec.tags) or [module.name],
                dependencies=[] if spec.public else private,
            )
        for check_name, check in module.readiness_checks.items():
            app.state.readiness_checks[f"{module.name}.{check_name}"] = check
