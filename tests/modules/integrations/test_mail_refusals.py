"""Issue 8, finding 1: a recipient the relay refuses is that mail's failure, never the relay's.

A relay on 127.0.0.1 (aiosmtpd) refuses `…@reject.example` with 550 at RCPT and, like many
relays, has no SMTPUTF8 (a non-ASCII address cannot be sent). Asking again and again for the
reset mail of such accounts must not open the `mail` circuit: everybody else's mail goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from loguru import logger

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations.settings import IntegrationsSettings
from tests.conftest import LogCapture
from tests.helpers import register
from tests.upstreams import MailCatcher, app_client, closed_port_url, eventually, free_port

REFUSED = "x@reject.example"
NON_ASCII = "ünïcode@example.com"


class RefusingRelay(MailCatcher):
    """Refuses every recipient at reject.example with 550 at RCPT; counts the refusals."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.endswith("@reject.example"):
            self.refused.append(address)
            return "550 5.1.1 <x@reject.example>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[Controller, RefusingRelay]]:
    catcher = RefusingRelay()
    controller = Controller(catcher, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False)
    controller.start()
    yield controller, catcher
    controller.stop()


def is_undelivered(record: dict[str, Any]) -> bool:
    return str(record["message"]).startswith(("mail delivery failed", "mail refused"))


def undelivered_at_least(logs: LogCapture, count: int) -> bool:
    return len(logs.find(is_undelivered)) >= count


async def test_a_refused_recipient_never_opens_the_mail_circuit_for_everyone(
    settings: CoreSettings, relay: tuple[Controller, RefusingRelay]
) -> None:
    controller, catcher = relay
    integrations = IntegrationsSettings(
        mail_url=f"smtp://127.0.0.1:{controller.port}", breaker_threshold=2
    )
    app = create_app(settings, module_settings={"integrations": integrations})
    logs = LogCapture()  # added after create_app(), which resets loguru's sinks
    sink = logger.add(logs.sink, level="DEBUG")
    try:
        async with app_client(app) as client:
            for email in (REFUSED, NON_ASCII, "ada@example.com"):
                await register(client, email)

            # Twice the threshold: each refusal used to count as a failure of the relay.
            for attempt, email in enumerate([REFUSED, NON_ASCII] * 2, start=1):
                response = await client.post("/auth/forgot-password", json={"email": email})
                assert response.status_code == 202
                await eventually(partial(undelivered_at_least, logs, attempt))

            response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
            assert response.status_code == 202
            await eventually(lambda: any(m["To"] == "ada@example.com" for m in catcher.messages))

            ready = (await client.get("/health/ready")).json()
    finally:
        logger.remove(sink)
    assert ready["status"] == "ok"
    assert ready["checks"]["integrations.circuits"]["detail"]["mail"] == {"state": "closed"}
    assert [m["To"] for m in catcher.messages] == ["ada@example.com"]
    assert catcher.refused == [REFUSED] * 2  # the relay was asked each time: nothing skipped
    assert not logs.find(lambda r: "recorded a failure" in str(r["message"]))
    undelivered = " ".join(r["message"] for r in logs.find(is_undelivered))
    assert NON_ASCII not in undelivered and REFUSED not in undelivered  # addresses stay out


async def test_readiness_shows_states_only_no_counts_or_times(settings: CoreSettings) -> None:
    # A relay that is down opens the circuit; the public answer says so, and nothing more
    # (the failure count and the opening time would tell an attacker when to strike).
    integrations = IntegrationsSettings(mail_url=closed_port_url("smtp"), breaker_threshold=1)
    app = create_app(settings, module_settings={"integrations": integrations})
    async with app_client(app) as client:
        await register(client, "ada@example.com")
        await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
        async with asyncio.timeout(5):
            while True:
                body = (await client.get("/health/ready")).json()
                circuits = body["checks"]["integrations.circuits"]
                if circuits["detail"]["mail"]["state"] == "open":
                    break
                await asyncio.sleep(0.02)
    assert body["status"] == "degraded" and circuits["status"] == "degraded"
    assert circuits["detail"]["mail"] == {"state": "open"}
    assert all(
        detail == {"state": "closed"}
        for name, detail in circuits["detail"].items()
        if name != "mail"
    )
