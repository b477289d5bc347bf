"""Issue 8, finding 1 (second half): mail that cannot go now waits in the database and is
retried, across restarts; never silently dropped. Real relays (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from loguru import logger
from prometheus_client import REGISTRY
from sqlalchemy import text

from app import migrations
from app.database import create_engine
from app.factory import create_app
from app.metrics import PREFIX
from app.settings import CoreSettings
from modules.integrations.settings import IntegrationsSettings
from tests.conftest import TEST_MODULES, LogCapture
from tests.helpers import login, register
from tests.mail import plain_text, token_in
from tests.upstreams import MailCatcher, app_client, eventually, free_port

NEW_PASSWORD = "a quiet meadow under winter stars"


class Relay:
    """A relay on a fixed port that the test starts (and stops) when it wants."""

    def __init__(self) -> None:
        self.port = free_port()
        self.catcher = MailCatcher()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.catcher, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def relay() -> Iterator[Relay]:
    relay = Relay()
    yield relay
    relay.stop()


def outbox_settings(relay: Relay, **extra: Any) -> IntegrationsSettings:
    values: dict[str, Any] = {
        "mail_url": relay.url,
        "breaker_threshold": 1,
        "breaker_ttl": 0.3,
        "mail_retry_base": 0.2,
        "mail_retry_max": 0.5,
        "mail_outbox_poll": 0.2,
    }
    values.update(extra)
    return IntegrationsSettings(**values)


def logged(capture: LogCapture, prefix: str, count: int = 1) -> bool:
    return len(capture.find(lambda r: str(r["message"]).startswith(prefix))) >= count


async def outbox_rows(database_url: str) -> list[dict[str, Any]]:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        result = await connection.execute(text("SELECT * FROM mail_outbox"))
        rows = [dict(row._mapping) for row in result]
    await engine.dispose()
    return rows


async def wait_for_a_failed_attempt(database_url: str) -> None:
    """Until the first attempt is committed: the log line comes just before the commit."""
    async with asyncio.timeout(30):
        while not any(row["attempts"] >= 1 for row in await outbox_rows(database_url)):
            await asyncio.sleep(0.05)


async def test_mail_waits_while_the_relay_is_down_and_arrives_when_it_is_back(
    settings: CoreSettings, relay: Relay
) -> None:
    app = create_app(settings, module_settings={"integrations": outbox_settings(relay)})
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG")
    try:
        async with app_client(app) as client:
            await register(client, "ada@example.com")
            response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
            assert response.status_code == 202
            await eventually(partial(logged, capture, "mail delivery failed"))
            await wait_for_a_failed_attempt(settings.database_url)
            for _ in range(2):  # asked again while it waits for a retry: still one mail
                response = await client.post(
                    "/auth/forgot-password", json={"email": "ada@example.com"}
                )
                assert response.status_code == 202
            await app.state.background.drain()  # the two jobs have ended
            ready = (await client.get("/health/ready")).json()
            assert ready["checks"]["integrations.circuits"]["detail"]["mail"] == {"state": "open"}
            rows = await outbox_rows(settings.database_url)
            [row] = rows
            # What to send, never a token: the kind, the user's id, the address it was asked
            # for (the mail is dropped if the account's address changes before it goes).
            user_id = (await me(client))["id"]
            assert (row["kind"], row["ref"], json.loads(row["params"])) == (
                "users.reset_password",
                user_id,
                {"to": "ada@example.com"},
            )

            relay.start()
            await eventually(lambda: len(relay.catcher.messages) == 1, timeout=30)
            mail = relay.catcher.messages[0]
            token = token_in(SimpleNamespace(body=plain_text(mail)))
            assert token not in str(rows)
            reset = await client.post(
                "/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
            )
            assert reset.status_code == 204, reset.text
            await login(client, "ada@example.com", NEW_PASSWORD)
            assert await outbox_rows(settings.database_url) == []
    finally:
        logger.remove(sink)
    assert mail["To"] == "ada@example.com"
    assert logged(capture, "mail sent: users.reset_password")
    failures = capture.find(lambda r: str(r["message"]).startswith("mail delivery failed"))
    assert all("ada@example.com" not in r["message"] for r in failures)


async def test_queued_mail_survives_a_restart(settings: CoreSettings, relay: Relay) -> None:
    integrations = outbox_settings(relay)
    first = create_app(settings, module_settings={"integrations": integrations})
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG")
    try:
        async with app_client(first) as client:
            await register(client, "ada@example.com")
            response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
            assert response.status_code == 202
            await eventually(partial(logged, capture, "mail delivery failed"))
    finally:
        logger.remove(sink)
    assert len(await outbox_rows(settings.database_url)) == 1

    relay.start()
    second = create_app(settings, module_settings={"integrations": integrations})
    async with app_client(second):  # no request: the drain finds the waiting mail
        await eventually(lambda: len(relay.catcher.messages) == 1, timeout=10)
    assert relay.catcher.messages[0]["Subject"] == "Reset your password"
    assert await outbox_rows(settings.database_url) == []


async def test_a_mail_is_given_up_after_the_last_attempt_and_logged(
    settings: CoreSettings, relay: Relay
) -> None:
    integrations = outbox_settings(relay, mail_max_attempts=2, breaker_threshold=10)
    app = create_app(settings, module_settings={"integrations": integrations})
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG")
    try:
        async with app_client(app) as client:
            await register(client, "ada@example.com")
            response = await client.post(
                "/auth/request-verify-token", json={"email": "ada@example.com"}
            )
            assert response.status_code == 202
            await eventually(partial(logged, capture, "mail given up"), timeout=10)
    finally:
        logger.remove(sink)
    [given_up] = capture.find(lambda r: str(r["message"]).startswith("mail given up"))
    assert given_up["level"] == "ERROR"
    assert given_up["message"].startswith("mail given up after 2 attempts: users.verify_email")
    assert await outbox_rows(settings.database_url) == []


async def test_the_queue_is_bounded_and_a_mail_past_the_bound_is_logged(
    settings: CoreSettings, relay: Relay
) -> None:
    integrations = outbox_settings(relay, mail_queue_max=1)
    app = create_app(settings, module_settings={"integrations": integrations})
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG")
    try:
        async with app_client(app) as client:
            for email in ("ada@example.com", "bob@example.com"):
                await register(client, email)
                response = await client.post("/auth/forgot-password", json={"email": email})
                assert response.status_code == 202
                await eventually(partial(logged, capture, "password reset requested"))
            await eventually(partial(logged, capture, "mail queue full"))
    finally:
        logger.remove(sink)
    [full] = capture.find(lambda r: str(r["message"]).startswith("mail queue full"))
    assert full["level"] == "ERROR"
    assert "users.reset_password not queued" in full["message"]
    assert len(await outbox_rows(settings.database_url)) == 1


async def me(client: Any) -> dict[str, Any]:
    tokens = await login(client, "ada@example.com")
    me = await client.get(
        "/users/me", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    body: dict[str, Any] = me.json()
    return body


def _drain_failures() -> float:
    labels = {"job": "mail outbox"}
    return REGISTRY.get_sample_value(f"{PREFIX}background_job_failures_total", labels) or 0.0


async def test_a_failing_drain_warns_once_per_outage_not_every_poll(
    settings: CoreSettings, tmp_path: Path, relay: Relay
) -> None:
    """Production started before `migrate` (no outbox table yet): the drain fails on every
    look; one warning says so, the looks after it are quiet, and one line says when it works."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}"
    unmigrated = settings.model_copy(update={"database_url": url, "migrate_on_start": False})
    app = create_app(unmigrated, module_settings={"integrations": outbox_settings(relay)})
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG")
    before = _drain_failures()
    try:
        async with app_client(app):
            await eventually(lambda: _drain_failures() - before >= 5, timeout=30)  # five looks
            warned = capture.find(lambda r: "drain failed" in str(r["message"]))
            assert len(warned) == 1, warned
            assert "OperationalError" in str(warned[0]["message"])
            await asyncio.to_thread(migrations.upgrade, url, TEST_MODULES)
            await eventually(partial(logged, capture, "mail outbox: drain works again"))
            assert len(capture.find(lambda r: "drain failed" in str(r["message"]))) == 1
    finally:
        logger.remove(sink)
