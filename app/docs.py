"""Swagger UI and ReDoc with their assets served by the app (no CDN: works offline).

The assets come from the installed `fastapi-offline` package; only its static folder is used.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

ASSETS_PATH = "/docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

# The pages may load nothing from elsewhere. ReDoc's bundle hard-codes an image from its CDN
# (the "API docs by Redocly" footer logo): this makes the browser skip it instead of trying.
# FastAPI's pages start the UI from an inline script, hence 'unsafe-inline' for scripts.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)


def _with_csp(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response


class _PublicStaticFiles(StaticFiles):
    """The docs' JS and CSS are the same for everyone: cacheable, unlike every other answer
    (the middleware's default is `no-store`)."""

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response


def install_docs(app: FastAPI, title: str) -> None:
    if app.openapi_url is None:
        return  # DOCS_ENABLED is off (the default in production): no schema, no pages
    app.mount(ASSETS_PATH, _PublicStaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url
    oauth2_redirect_url = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _with_csp(
            get_swagger_ui_html(
                openapi_url=openapi_url,
                title=f"{title} - Swagger UI",
                oauth2_redirect_url=oauth2_redirect_url,
                swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
                swagger_ui_parameters={"persistAuthorization": True},
            )
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return _with_csp(get_swagger_ui_oauth2_redirect_html())

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _with_csp(
            get_redoc_html(
                openapi_url=openapi_url,
                title=f"{title} - ReDoc",
                redoc_js_url=f"{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )
