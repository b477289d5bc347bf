"""Mail through a real SMTP server on 127.0.0.1 (aiosmtpd): reset links that work, failures
that never change the API's answer, MAIL_URL checks."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from loguru import logger
from pydantic import ValidationError

from app.factory import create_app
from app.loader import ModuleLoadError
from app.settings import CoreSettings, SettingsError
from modules.integrations.mail_url import parse_mail_url
from modules.integrations.settings import IntegrationsSettings
from tests.conftest import LogCapture
from tests.helpers import PASSWORD, assert_problem, login, register
from tests.upstreams import MailCatcher, app_client, eventually, start_smtp_server

NEW_PASSWORD = "a quiet meadow under winter stars"
SMTP_PASSWORD = "smtp-secret-9f8e7d6c"


@pytest.fixture
def smtp() -> Iterator[tuple[Controller, MailCatcher]]:
    controller, catcher = start_smtp_server()
    yield controller, catcher
    controller.stop()


def with_mail(mail_url: str, **extra: object) -> IntegrationsSettings:
    return IntegrationsSettings(mail_url=mail_url, **extra)  # type: ignore[arg-type]


async def test_forgot_password_mail_carries_a_link_whose_token_resets(
    settings: CoreSettings, smtp: tuple[Controller, MailCatcher]
) -> None:
    controller, catcher = smtp
    integrations = with_mail(f"smtp://127.0.0.1:{controller.port}")
    app = create_app(settings, module_settings={"integrations": integrations})
    async with app_client(app) as client:
        await register(client, "ada@example.com")
        response = await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
        assert response.status_code == 202
        await eventually(lambda: len(catcher.messages) == 1)

        mail = catcher.messages[0]
        assert mail["To"] == "ada@example.com"
        assert mail["Subject"] == "Reset your password"
        plain = mail.get_body(preferencelist=("plain",))
        assert plain is not None
        body = plain.get_content()
        link = next(line.strip() for line in body.splitlines() if "token=" in line)
        assert link.startswith(f"{settings.effective_public_url}/auth/reset-password?token=")
        token = parse_qs(urlsplit(link).query)["token"][0]

        reset = await client.post(
            "/auth/reset-password", json={"token": token, "password": NEW_PASSWORD}
        )
        assert reset.status_code == 204, reset.text
        await login(client, "ada@example.com", NEW_PASSWORD)
        old = await client.post(
            "/auth/jwt/login", data={"username": "ada@example.com", "password": PASSWORD}
        )
        assert_problem(old, 400, "LOGIN_BAD_CREDENTIALS")


def is_delivery_failure(record: dict[str, object]) -> bool:
    return str(record["message"]).startswith("mail delivery failed")


async def test_the_smtp_password_never_reaches_the_log(
    settings: CoreSettings, smtp: tuple[Controller, MailCatcher]
) -> None:
    controller, catcher = smtp
    # aiosmtpd offers no AUTH over plain SMTP: the login fails, the failure is logged.
    url = f"smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:{controller.port}"
    app = create_app(settings, module_settings={"integrations": with_mail(url)})
    capture = LogCapture()
    sink = logger.add(capture.sink, level="DEBUG")
    try:
        async with app_client(app) as client:
            await register(client, "ada@example.com")
            await client.post("/auth/forgot-password", json={"email": "ada@example.com"})
            await eventually(lambda: bool(capture.find(is_delivery_failure)))
    finally:
        logger.remove(sink)
    [failure] = capture.find(is_delivery_failure)
    assert "SMTPException" in failure["message"]  # no AUTH offered: the login failed
    assert catcher.messages == []
    assert SMTP_PASSWORD not in capture.text
    assert SMTP_PASSWORD not in repr(app.state.module_settings["integrations"])


def test_console_mail_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("MAIL_URL", "console://")
    with pytest.raises(ModuleLoadError) as caught:
        create_app(
            CoreSettings(
                environment="production",
                secret_key=secrets.token_urlsafe(48),
                public_url="https://auth.example.com",
                modules=["integrations"],
            )
        )
    message = str(caught.value)
    assert "\n" not in message
    assert "MAIL_URL=console://" in message and "ENVIRONMENT=production" in message


async def test_the_lifespan_refuses_console_mail_when_the_core_says_production(
    settings: CoreSettings,
) -> None:
    # Module settings built elsewhere (environment not production): the core setting decides.
    production = settings.model_copy(update={"environment": "production"})
    app = create_app(production, module_settings={"integrations": IntegrationsSettings()})
    with pytest.raises(SettingsError, match=r"MAIL_URL=console:// .* ENVIRONMENT=production"):
        async with app.router.lifespan_context(app):
            pass


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mx.example", ("smtp", "mx.example", 25, None, None, False)),
        ("smtps://u:p%40ss@mx.example", ("smtps", "mx.example", 465, "u", "p@ss", False)),
        ("smtp://mx.example:587?starttls=true", ("smtp", "mx.example", 587, None, None, True)),
    ],
)
def test_mail_url_forms(url: str, expected: tuple[object, ...]) -> None:
    parsed = parse_mail_url(url)
    assert (
        parsed.scheme,
        parsed.host,
        parsed.port,
        parsed.username,
        parsed.password,
        parsed.starttls,
    ) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://mail.example.com",
        "smtp://",
        "smtp://u:hunter2-secret@mail.example.com?starttls=maybe",
        "smtps://u:hunter2-secret@mail.example.com?starttls=true",
        "smtp://mail.example.com?tls=1",
    ],
)
def test_bad_mail_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        IntegrationsSettings(mail_url=url)
    assert "MAIL_URL" in str(caught.value)
    assert "hunter2-secret" not in str(caught.value)
