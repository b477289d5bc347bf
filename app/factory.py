"""`create_app()`: where every request's path starts.

Request flow: `RequestContextMiddleware` (request id, access line, body limit, last-resort 500)
→ FastAPI routing → the module routers mounted below (see each `modules/<name>/__init__.py`)
→ errors are turned into problem+json by `app/errors.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import Depends, FastAPI
from loguru import logger
from pydantic_settings import BaseSettings

from app import docs, health
from app.auth import authenticated
from app.background import BackgroundTasks
from app.database import Database
from app.errors import install_error_handlers
from app.loader import LoadedModule, load_modules
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
                        app=app, core=settings, settings=item.settings, database=database
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
    app.state.module_settings = {m.module.name: m.settings for m in loaded}
    app.state.readiness_checks = {}

    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, settings=settings)
    app.include_router(health.router)
    _mount_modules(app, loaded)
    docs.install_docs(app, TITLE)
    install_openapi(app)
    return app


def _mount_modules(app: FastAPI, loaded: list[LoadedModule]) -> None:
    for item in loaded:
        module = item.module
        for spec in module.routers:
            # Authenticated by default: only what a module declares public is public.
            dependencies = [] if spec.public else [Depends(authenticated)]
            app.include_router(
                spec.router,
                prefix=spec.prefix,
                tags=list(spec.tags) or [module.name],
                dependencies=dependencies,
            )
        for check_name, check in module.readiness_checks.items():
            app.state.readiness_checks[f"{module.name}.{check_name}"] = check
        app.dependency_overrides.update(module.dependency_overrides)
