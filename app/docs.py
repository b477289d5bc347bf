"""Swagger UI and ReDoc with their assets served by the app (no CDN: works offline).

The assets come from the installed `fastapi-offline` package; only its static folder is used.

The Swagger page is FastAPI's, plus what its Authorize dialog needs for a password login:
- only `username` and `password` show: OAuth2's client-credentials rows and the "Scopes are
  used to…" text are hidden by CSS (Swagger UI has no option for either; the server ignores
  client credentials and has no scopes);
- its Logout also ends the session on the server: a plugin wraps Swagger UI's `logout` action
  and POSTs to the operation whose id is `logout` with the token it held (Swagger's own Logout
  only forgets the token);
- a refused login shows the problem's `detail`: Swagger UI shows a failed token request's
  OAuth2 `error_description`, which the login's problems carry.
"""

from __future__ import annotations

import html
import json
import os
from os import PathLike
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_oauth2_redirect_html
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


# Swagger UI renders each dialog row as `div.wrapper > label[for=...]`.
_AUTHORIZE_CSS = """
.wrapper:has(> label[for="password_type"]),
.wrapper:has(> label[for^="client_id_"]),
.wrapper:has(> label[for^="client_secret_"]),
.scope-def { display: none; }
"""

# Swagger UI's plugin API: wrapActions get the original action and the system.
_LOGOUT_PLUGIN = """
const RevokingLogout = () => ({
  statePlugins: { auth: { wrapActions: {
    logout: (original, system) => (names) => {
      const paths = system.specSelectors.specJson().get("paths");
      let logoutPath = null;
      if (paths) paths.forEach((item, path) => item.forEach((operation) => {
        if (operation && operation.get && operation.get("operationId") === "logout") {
          logoutPath = path;
        }
      }));
      const held = system.authSelectors.authorized();
      (names || []).forEach((name) => {
        const token = held && held.getIn([name, "token", "access_token"]);
        if (token && logoutPath) {
          fetch(logoutPath, { method: "POST", headers: { Authorization: "Bearer " + token } });
        }
      });
      return original(names);
    },
  } } },
});
"""


def swagger_ui_html(title: str, openapi_url: str, oauth2_redirect_url: str) -> str:
    """FastAPI's Swagger page (get_swagger_ui_html) with the dialog's CSS and the logout
    plugin: a plugin is a JavaScript function, which get_swagger_ui_html cannot pass."""
    config = {
        "url": openapi_url,
        "dom_id": "#swagger-ui",
        "layout": "BaseLayout",
        "deepLinking": True,
        "showExtensions": True,
        "showCommonExtensions": True,
        "persistAuthorization": True,
        "oauth2RedirectUrl": oauth2_redirect_url,
    }
    return f"""<!DOCTYPE html>
<html>
<head>
<link type="text/css" rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
<link rel="shortcut icon" href="{ASSETS_PATH}/favicon.png">
<title>{html.escape(title)}</title>
<style>{_AUTHORIZE_CSS}</style>
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script>
{_LOGOUT_PLUGIN}
const config = {json.dumps(config)};
window.ui = SwaggerUIBundle({{
  ...config,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  plugins: [RevokingLogout],
}});
</script>
</body>
</html>"""


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
        page = swagger_ui_html(f"{title} - Swagger UI", openapi_url, oauth2_redirect_url)
        return _with_csp(HTMLResponse(page))

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
