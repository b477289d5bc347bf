"""`is_password_breached` against a range API on 127.0.0.1: answers, refusals, failures."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations import is_password_breached
from modules.integrations.breakers import Breakers
from modules.integrations.pwned import breach_count, sha1_prefix_suffix
from modules.integrations.settings import IntegrationsSettings
from tests.conftest import LogCapture
from tests.upstreams import FakeHttpUpstream

PASSWORD = "Tr0ub4dor&3"


@pytest.fixture
def app(settings: CoreSettings, upstream: FakeHttpUpstream) -> FastAPI:
    integrations = IntegrationsSettings(pwned_passwords_url=upstream.url + "/api")
    return create_app(settings, module_settings={"integrations": integrations})


async def circuit_failures(app: FastAPI) -> int:
    breakers: Breakers = app.state.integrations.breakers
    return (await breakers.snapshot())["pwned-passwords"].failures


async def test_a_listed_suffix_is_a_breach(
    client: httpx.AsyncClient, app: FastAPI, upstream: FakeHttpUpstream
) -> None:
    prefix, suffix = sha1_prefix_suffix(PASSWORD)
    upstream.answer(200, f"0000000000000000000000000000000000A:0\r\n{suffix.lower()}:3\r\n")
    assert await is_password_breached(app, PASSWORD) is True
    assert [r.path for r in upstream.requests] == [f"/api/range/{prefix}"]
    assert upstream.requests[0].headers["user-agent"].startswith("gatehouse/")


async def test_an_absent_suffix_is_not_a_breach(
    client: httpx.AsyncClient, app: FastAPI, upstream: FakeHttpUpstream
) -> None:
    upstream.answer(200, "0000000000000000000000000000000000A:12\r\n")
    assert await is_password_breached(app, PASSWORD) is False


async def test_a_4xx_skips_the_check_without_counting_a_failure(
    client: httpx.AsyncClient, app: FastAPI, upstream: FakeHttpUpstream, logs: LogCapture
) -> None:
    upstream.answer(404)
    assert await is_password_breached(app, PASSWORD) is None
    assert await circuit_failures(app) == 0
    [skipped] = logs.find(lambda r: r["message"].startswith("breached-password check skipped"))
    assert "UpstreamRefusedError" in skipped["message"] and "404" in skipped["message"]


async def test_a_5xx_skips_the_check_and_counts_a_failure(
    client: httpx.AsyncClient, app: FastAPI, upstream: FakeHttpUpstream, logs: LogCapture
) -> None:
    upstream.answer(503)
    assert await is_password_breached(app, PASSWORD) is None
    assert await circuit_failures(app) == 1
    assert PASSWORD not in logs.text


async def test_the_check_is_off_without_a_url(settings: CoreSettings) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        assert app.state.integrations.pwned is None
        assert await is_password_breached(app, PASSWORD) is None
        assert "pwned-passwords" not in await app.state.integrations.breakers.snapshot()


def test_the_count_is_read_exactly() -> None:
    body = "AAA:1\r\nBBB:0\r\nCCC:x\r\n"
    assert (breach_count(body, "AAA"), breach_count(body, "BBB")) == (1, 0)
    assert (breach_count(body, "CCC"), breach_count(body, "DDD")) == (0, 0)
