"""Issue 8, finding 3: SMTP credentials and mails (with their tokens) never cross in clear.

The relay (aiosmtpd on 127.0.0.1) offers STARTTLS with a certificate from a CA the test makes,
and, like a careless relay, accepts AUTH before TLS: what protects the password is the client.
The relay records, for AUTH and for DATA, whether the session was already under TLS.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from loguru import logger
from pydantic import ValidationError

from app.factory import create_app
from app.settings import CoreSettings
from modules.integrations.settings import IntegrationsSettings
from tests.conftest import LogCapture
from tests.helpers import register
from tests.mail import plain_text
from tests.tls import Pki, make_test_pki
from tests.upstreams import MailCatcher, app_client, eventually, free_port

SMTP_PASSWORD = "smtp-secret-5a4b3c2d"


class TlsRecordingRelay(MailCatcher):
    """Records ("AUTH" | "DATA", under TLS?) for each step, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[str, bool]] = []

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.steps.append(("AUTH", session.ssl is not None))
        return AuthResult(success=auth_data.password == SMTP_PASSWORD.encode())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.steps.append(("DATA", session.ssl is not None))
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_test_pki(tmp_path / "pki")


@pytest.fixture
def relay(pki: Pki) -> Iterator[tuple[Controller, TlsRecordingRelay]]:
    catcher = TlsRecordingRelay()
    controller = Controller(
        catcher,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=pki.server_context(),  # offers STARTTLS
        authenticator=catcher.authenticate,
        auth_require_tls=False,  # would take the password in clear
    )
    controller.start()
    yield controller, catcher
    controller.stop()


def saw_untrusted_certificate(logs: LogCapture) -> bool:
    return "SSLCertVerificationError" in logs.text


def smtp_url(controller: Controller) -> str:
    return f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{controller.port}"


async def test_credentials_and_the_token_travel_only_under_tls(
    settings: CoreSettings, pki: Pki, relay: tuple[Controller, TlsRecordingRelay]
) -> None:
    controller, catcher = relay
    integrations = IntegrationsSettings(
        mail_url=smtp_url(controller),
        mail_tls_ca_file=pki.ca_file,  # type: ignore[arg-type]
    )
    app = create_app(settings, module_settings={"integrations": integrations})
    async with app_client(app) as client:
        await register(client, "ada@example.com")
        response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
        assert response.status_code == 202
        await eventually(lambda: len(catcher.messages) == 1, timeout=10)
    assert "token=" in plain_text(catcher.messages[0])
    assert catcher.steps == [("AUTH", True), ("DATA", True)]


async def test_a_relay_whose_certificate_is_not_trusted_gets_nothing(
    settings: CoreSettings, tmp_path: Path, relay: tuple[Controller, TlsRecordingRelay]
) -> None:
    controller, catcher = relay
    other_ca = make_test_pki(tmp_path / "other", name="other").ca_file
    for ca_file in (None, other_ca):  # the system's CAs; a private CA that did not sign it
        integrations = IntegrationsSettings(
            mail_url=smtp_url(controller),
            mail_tls_ca_file=ca_file,  # type: ignore[arg-type]
            breaker_threshold=50,
            mail_retry_base=0.1,  # the mail waiting from the first round is retried soon
            mail_retry_max=0.2,
        )
        app = create_app(settings, module_settings={"integrations": integrations})
        logs = LogCapture()
        sink = logger.add(logs.sink, level="DEBUG")
        try:
            async with app_client(app) as client:
                if ca_file is None:
                    await register(client, "ada@example.com")
                response = await client.post(
                    "/auth/forgot-password", json={"email": "ada@example.com"}
                )
                assert response.status_code == 202
                await eventually(partial(saw_untrusted_certificate, logs), timeout=10)
        finally:
            logger.remove(sink)
    assert catcher.steps == []  # no AUTH, no DATA: not in clear, not to an unverified peer
    assert catcher.messages == []
    assert SMTP_PASSWORD not in logs.text


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("smtp://user:hunter2-secret@mx.example.com:587", True),
        ("smtp://user:hunter2-secret@mx.example.com:587?starttls=true", False),
        ("smtps://user:hunter2-secret@mx.example.com", False),
        ("smtp://mx.example.com:25", False),  # no credentials: STARTTLS when offered
    ],
)
def test_production_refuses_credentials_without_guaranteed_tls(url: str, refused: bool) -> None:
    if not refused:
        IntegrationsSettings(mail_url=url, environment="production")
        return
    with pytest.raises(ValidationError) as caught:
        IntegrationsSettings(mail_url=url, environment="production")
    message = str(caught.value)
    assert "hunter2-secret" not in message
    assert "MAIL_URL=smtp:// with credentials" in message and "?starttls=true" in message
