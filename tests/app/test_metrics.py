"""/metrics: Prometheus text, requests by route template (never the raw path), the modules'
own metrics, METRICS_ENABLED and METRICS_TOKEN.

The metrics of one process are global (as Prometheus' client keeps them): every test reads the
change it caused, between two scrapes.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from app.background import BackgroundTasks
from app.database import Database
from app.factory import create_app
from app.metrics import MULTIPROC_ENV, multiprocess_dir
from app.purge import PurgeJob, scheduled
from app.settings import CoreSettings
from modules.users.hashing import PasswordHasher
from modules.users.settings import UsersSettings
from tests.conftest import TEST_SECRET, LogCapture
from tests.helpers import PASSWORD, assert_problem, bearer, login, register
from tests.modules.users.apps import client_for, running_app

METRICS_TOKEN = "scrape-token-0123456789abcdef"
Scrape = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Scrape:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: Scrape, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> tuple[Scrape, str]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text), response.text


def delta(before: Scrape, after: Scrape) -> Callable[..., float]:
    def change(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    return change


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    before, _ = await scrape(client)
    some_id, other_id = uuid.uuid4(), uuid.uuid4()
    for _ in range(2):
        assert (await client.get("/users/me")).status_code == 401
    for user_id in (some_id, other_id):
        assert (await client.get(f"/users/{user_id}")).status_code == 401
    assert (await client.get("/no/such/path/zq7391")).status_code == 404
    assert (await client.get("/another-zq8264")).status_code == 404
    assert (await client.request("BREW", "/health/live")).status_code == 405
    assert (await client.get("/health/live")).status_code == 200
    after, text = await scrape(client)
    change = delta(before, after)

    requests = "gatehouse_http_requests_total"
    assert change(requests, method="GET", route="/users/me", status="401") == 2
    assert change(requests, method="GET", route="/users/{id}", status="401") == 2
    assert change(requests, method="GET", route="unmatched", status="404") == 2
    assert change(requests, method="OTHER", route="/health/live", status="405") == 1
    assert change(requests, method="GET", route="/health/live", status="200") == 1
    latency = "gatehouse_http_request_duration_seconds"
    assert change(f"{latency}_count", method="GET", route="/users/me") == 2
    assert change(f"{latency}_bucket", method="GET", route="/users/me", le="+Inf") == 2
    assert change(f"{latency}_sum", method="GET", route="/users/me") > 0
    # No raw path, id or method ever becomes a label value: the series stay bounded.
    for raw in (str(some_id), str(other_id), "zq7391", "zq8264", "BREW"):
        assert raw not in text


async def test_logins_refresh_reuse_and_revocations_are_counted(settings: CoreSettings) -> None:
    users = UsersSettings(login_max_failures=2)
    async with running_app(settings, users) as app, client_for(app) as client:
        email = "ada@example.com"
        await register(client, email)
        before, _ = await scrape(client)
        first = await login(client, email)
        second = await login(client, email)
        for _ in range(2):
            response = await client.post(
                "/auth/jwt/login", data={"username": email, "password": "wrong " + PASSWORD}
            )
            assert_problem(response, 400, "LOGIN_BAD_CREDENTIALS")
        limited = await client.post("/auth/jwt/login", data={"username": email, "password": "x"})
        assert_problem(limited, 429, "RATE_LIMITED")

        refreshed = await client.post(
            "/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert refreshed.status_code == 200
        replayed = await client.post(
            "/auth/jwt/refresh", json={"refresh_token": first["refresh_token"]}
        )
        assert_problem(replayed, 401, "REFRESH_TOKEN_REUSED")
        logout = await client.post("/auth/jwt/logout", headers=bearer(second["access_token"]))
        assert logout.status_code == 204
        after, _ = await scrape(client)

    change = delta(before, after)
    assert change("gatehouse_logins_total", outcome="ok") == 2
    assert change("gatehouse_logins_total", outcome="bad_credentials") == 2
    assert change("gatehouse_logins_total", outcome="limited") == 1
    assert change("gatehouse_refresh_token_reuse_total") == 1
    assert change("gatehouse_sessions_revoked_total", reason="reuse") == 1
    assert change("gatehouse_sessions_revoked_total", reason="logout") == 1
    # Four password checks went through the hashing pool (the limited one never hashed).
    assert change("gatehouse_password_hash_wait_seconds_count") == 4


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_hash_pool_reports_its_queue_and_the_wait() -> None:
    """One hashing thread, held busy: three more jobs queue behind it, and each waits."""
    hasher = PasswordHasher(workers=1, nice_increment=0)
    queue = "gatehouse_password_hash_queue_depth"
    waits = "gatehouse_password_hash_wait_seconds_count"
    waited = "gatehouse_password_hash_wait_seconds_sum"
    base_queue, base_waits, base_waited = _sample(queue), _sample(waits), _sample(waited)
    release = threading.Event()
    try:
        busy = asyncio.ensure_future(hasher.run(release.wait, 10))
        queued = [asyncio.ensure_future(hasher.run(time.sleep, 0)) for _ in range(3)]
        deadline = time.monotonic() + 10
        while _sample(queue) - base_queue != 3:
            assert time.monotonic() < deadline, _sample(queue) - base_queue
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        release.set()
        await asyncio.gather(busy, *queued)
    finally:
        release.set()
        hasher.close()
    assert _sample(queue) == base_queue
    assert _sample(waits) - base_waits == 4
    assert _sample(waited) - base_waited >= 3 * 0.3  # the three queued jobs waited that long


async def test_background_job_failures_are_counted(settings: CoreSettings) -> None:
    failures = "gatehouse_background_job_failures_total"
    base_mail = _sample(failures, job="test mail")
    base_purge = _sample(failures, job="purge")

    async def broken() -> None:
        raise RuntimeError("boom")

    tasks = BackgroundTasks()
    tasks.submit("test mail", broken())
    await tasks.drain()
    assert _sample(failures, job="test mail") - base_mail == 1

    async def broken_batch(*_: object) -> int:
        raise RuntimeError("the database went away")

    database = Database(settings.database_url)
    try:
        async with scheduled(database, [PurgeJob("test.broken", broken_batch)], 0.05, 10):
            deadline = time.monotonic() + 10
            while _sample(failures, job="purge") == base_purge:
                assert time.monotonic() < deadline, "the failed purge was not counted"
                await asyncio.sleep(0.02)
    finally:
        await database.dispose()


@pytest.fixture
async def guarded_client(settings: CoreSettings) -> AsyncIterator[httpx.AsyncClient]:
    guarded = settings.model_copy(update={"metrics_token": METRICS_TOKEN})
    app = create_app(CoreSettings.model_validate(guarded.model_dump()))
    async with app.router.lifespan_context(app), client_for(app) as client:
        yield client


async def test_with_a_token_metrics_need_it_as_a_bearer_token(
    guarded_client: httpx.AsyncClient,
) -> None:
    client = guarded_client
    for headers in ({}, bearer("wrong-token-0123456789abcdef"), {"Authorization": METRICS_TOKEN}):
        refused = await client.get("/metrics", headers=headers)
        assert_problem(refused, 401, "UNAUTHORIZED")
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "gatehouse_" not in refused.text
    found, _ = await scrape(client, **bearer(METRICS_TOKEN))
    assert (
        value(found, "gatehouse_http_requests_total", method="GET", route="/metrics", status="401")
        >= 3
    )


async def test_the_token_never_reaches_the_log(settings: CoreSettings) -> None:
    guarded = CoreSettings.model_validate({**settings.model_dump(), "metrics_token": METRICS_TOKEN})
    app = create_app(guarded)
    logs = LogCapture()
    from loguru import logger

    sink = logger.add(logs.sink, level="DEBUG", format="{message}")
    try:
        async with app.router.lifespan_context(app), client_for(app) as client:
            await client.get("/metrics", headers=bearer(METRICS_TOKEN))
            await client.get("/metrics", headers={"X-Note": f"token {METRICS_TOKEN}"})
            from loguru import logger as log

            log.info("a line that quotes it: {}", METRICS_TOKEN)
    finally:
        logger.remove(sink)
    assert METRICS_TOKEN not in logs.text


async def test_metrics_are_on_in_development_and_off_in_production(tmp_path: Path) -> None:
    assert CoreSettings(environment="development", data_dir=tmp_path).serve_metrics
    production = CoreSettings(
        environment="production",
        secret_key=TEST_SECRET + "Zq9",
        public_url="https://auth.example.com",
        data_dir=tmp_path,
    )
    assert not production.serve_metrics
    # No lifespan needed: neither answer touches the database.
    async with client_for(create_app(production)) as client:
        assert_problem(await client.get("/metrics"), 404)
    enabled = production.model_copy(update={"metrics_enabled": True})
    async with client_for(create_app(enabled)) as client:
        await scrape(client)


async def test_metrics_off_answers_404(settings: CoreSettings) -> None:
    off = settings.model_copy(update={"metrics_enabled": False})
    app = create_app(off)
    async with app.router.lifespan_context(app), client_for(app) as client:
        assert_problem(await client.get("/metrics"), 404)


def test_a_short_or_empty_metrics_token_is_refused_or_ignored() -> None:
    with pytest.raises(ValidationError, match="METRICS_TOKEN must be at least 16 characters"):
        CoreSettings(metrics_token="short")
    assert CoreSettings(metrics_token="  ").metrics_token is None


def test_serving_several_workers_sets_up_their_shared_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    with multiprocess_dir(1) as none:
        assert none is None and MULTIPROC_ENV not in os.environ
    with multiprocess_dir(2) as made:
        assert made is not None and made.is_dir()
        assert os.environ[MULTIPROC_ENV] == str(made)
        (made / "counter_123.db").write_bytes(b"x")
    assert not made.exists() and MULTIPROC_ENV not in os.environ

    given = tmp_path / "metrics"
    given.mkdir()
    (given / "counter_999.db").write_bytes(b"stale samples of an earlier run")
    (given / "notes.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_dir(2) as kept:
        assert kept == given
        assert sorted(p.name for p in given.iterdir()) == ["notes.txt"]
    assert given.is_dir()
