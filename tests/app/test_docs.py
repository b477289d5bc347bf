"""Swagger UI and ReDoc work offline, and the Authorize button's password flow logs in."""

from __future__ import annotations

import json
import pathlib
import re
import secrets
import shutil
import subprocess

import httpx
import pytest

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations.settings import IntegrationsSettings
from tests.helpers import PASSWORD, bearer, login, register


async def test_docs_pages_use_only_local_assets(client: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await client.get(page)
        assert response.status_code == 200
        html = response.text
        assert not re.search(r"(src|href)=\"https?://", html), f"{page} loads from the web"
        assets = re.findall(r"(?:src|href)=\"(/docs-assets/[^\"]+)\"", html)
        assets += re.findall(r"url: '(/docs-assets/[^']+)'", html)
        assert assets, f"{page} references no local asset"
        for asset in assets:
            served = await client.get(asset)
            assert served.status_code == 200, asset
            assert len(served.content) > 1000


async def test_swagger_js_and_css_are_served(client: httpx.AsyncClient) -> None:
    html = (await client.get("/docs")).text
    assert "/docs-assets/swagger-ui-bundle.js" in html
    assert "/docs-assets/swagger-ui.css" in html
    js = await client.get("/docs-assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in js.text
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200


async def test_authorize_button_flow(client: httpx.AsyncClient) -> None:
    """What Swagger UI does: read the password flow's tokenUrl, post the form, use the token."""
    schema = (await client.get("/openapi.json")).json()
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    token_url = flows["password"]["tokenUrl"]
    await register(client, "ada@example.com")
    # Swagger resolves tokenUrl against the page (/docs) and sends these exact fields.
    response = await client.post(
        httpx.URL("http://testserver/docs").join(token_url),
        data={
            "grant_type": "password",
            "username": "ada@example.com",
            "password": PASSWORD,
            "scope": "",
        },
        headers={"Authorization": "Basic Og=="},  # swagger sends empty client credentials
    )
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    me = await client.get("/users/me", headers=bearer(token))
    assert me.status_code == 200


async def test_schema_documents_problem_responses(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    login = schema["paths"]["/auth/jwt/login"]["post"]
    bad = login["responses"]["400"]["content"]
    assert list(bad) == ["application/problem+json"]
    assert "LOGIN_BAD_CREDENTIALS" in bad["application/problem+json"]["examples"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            assert "500" in operation["responses"], f"{method} {path} lacks 500"
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert "application/problem+json" in response["content"], (path, status)
            summary = operation.get("summary") or ""
            # Not FastAPI's fallback made from a route name such as "Users:Patch User".
            assert summary and not re.match(r"^\w+:\S", summary), f"{method} {path}: {summary}"


async def test_docs_pages_may_load_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    """ReDoc's bundle hard-codes a CDN logo: the page's policy keeps the browser from asking."""
    for page in ("/docs", "/redoc"):
        policy = (await client.get(page)).headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert directives["img-src"] == "'self' data:"
        assert directives["connect-src"] == "'self'"
        assert "http" not in policy


def _production(settings: CoreSettings, **extra: object) -> CoreSettings:
    return CoreSettings(
        environment="production",
        database_url=settings.database_url,
        secret_key=secrets.token_urlsafe(48),
        public_url="https://auth.example.com",
        modules=["users", "integrations"],
        data_dir=settings.data_dir,
        log_format="json",
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("enabled", [None, False, True])
async def test_production_serves_docs_only_when_enabled(
    settings: CoreSettings, enabled: bool | None
) -> None:
    # users needs integrations, whose production settings refuse console mail: any SMTP URL
    # does (this test sends no mail).
    integrations = IntegrationsSettings(mail_url="smtp://127.0.0.1:2525")
    app = create_app(
        _production(settings, docs_enabled=enabled), module_settings={"integrations": integrations}
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
            for path in ("/docs", "/redoc", "/openapi.json", "/docs-assets/swagger-ui.css"):
                response = await c.get(path)
                assert response.status_code == (200 if enabled else 404), path
            # The API itself is served either way.
            assert (await c.get("/health/live")).status_code == 200
            answer = await c.post("/auth/jwt/login", data={"username": "a@b.co", "password": "x"})
            assert answer.status_code == 400


async def test_authorize_dialog_shows_only_username_and_password(
    client: httpx.AsyncClient,
) -> None:
    """Swagger UI has no option to hide OAuth2's client rows: the page's CSS hides each row
    (`div.wrapper` holding the label) and the scopes text, and nothing else."""
    html = (await client.get("/docs")).text
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    hidden = re.findall(r'label\[for\^?="([^"]+)"\]', style)
    assert sorted(hidden) == ["client_id_", "client_secret_", "password_type"]
    assert ".scope-def" in style
    assert "oauth_username" not in style and "oauth_password" not in style


_RUN_LOGOUT_PLUGIN = """
// Swagger UI's state is Immutable.js; these stand-ins have the few methods the plugin calls.
const map = (entries) => ({
  get: (key) => entries[key],
  forEach: (fn) => Object.entries(entries).forEach(([k, v]) => fn(v, k)),
});
const calls = [];
globalThis.fetch = (url, init) => { calls.push({ url, init }); return Promise.resolve(); };
const spec = JSON.parse(process.argv[2]);
const paths = map(Object.fromEntries(Object.entries(spec.paths).map(([path, item]) =>
  [path, map(Object.fromEntries(Object.entries(item).map(([m, op]) => [m, map(op)])))])));
const token = process.argv[3];
const system = {
  specSelectors: { specJson: () => map({ paths }) },
  authSelectors: { authorized: () => ({
    getIn: ([name, key, field]) => (name === "OAuth2PasswordBearer" ? token : undefined),
  }) },
};
let forgotten = null;
const plugin = RevokingLogout();
plugin.statePlugins.auth.wrapActions.logout((names) => { forgotten = names; }, system)(
  ["OAuth2PasswordBearer"]);
console.log(JSON.stringify({ calls, forgotten }));
"""


async def test_swagger_logout_ends_the_session(
    client: httpx.AsyncClient, tmp_path: pathlib.Path
) -> None:
    """The page's logout plugin, run by node with the served schema and a real token: it
    POSTs to the `logout` operation with the token; that request ends the session."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (needed to run the page's plugin)")
    html = (await client.get("/docs")).text
    plugin = re.search(r"(const RevokingLogout = .*?\n\}\);)", html, re.S)
    assert plugin, "the page has no logout plugin"
    script = tmp_path / "logout.js"
    script.write_text(plugin.group(1) + _RUN_LOGOUT_PLUGIN)
    schema = (await client.get("/openapi.json")).json()
    await register(client, "ada@example.com")
    token = (await login(client, "ada@example.com"))["access_token"]
    ran = subprocess.run(
        [node, str(script), json.dumps(schema), token],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(ran.stdout)
    assert result["forgotten"] == ["OAuth2PasswordBearer"]  # Swagger's own logout still runs
    [call] = result["calls"]
    assert call["init"]["method"] == "POST"
    answer = await client.post(call["url"], headers=call["init"]["headers"])
    assert answer.status_code == 204
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 401
