"""The integrations module's runtime: what its lifespan opens, what other modules use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI

from app.module import ModuleContext
from modules.integrations.mail import BackgroundSender, ConsoleMailer, MailMessage
from modules.integrations.settings import IntegrationsSettings


@dataclass
class Integrations:
    settings: IntegrationsSettings
    mail: BackgroundSender


def build_mailer(settings: IntegrationsSettings) -> ConsoleMailer:
    if settings.mail_url.startswith("console://"):
        return ConsoleMailer()
    raise ValueError(f"MAIL_URL scheme not supported: {settings.mail_url.split(':', 1)[0]}")


@asynccontextmanager
async def lifespan(context: ModuleContext) -> AsyncIterator[None]:
    settings = context.settings
    assert isinstance(settings, IntegrationsSettings)
    integrations = Integrations(settings=settings, mail=BackgroundSender(build_mailer(settings)))
    context.app.state.integrations = integrations
    try:
        yield
    finally:
        await integrations.mail.drain()


def get_integrations(app: FastAPI) -> Integrations:
    integrations: Integrations | None = getattr(app.state, "integrations", None)
    if integrations is None:
        raise RuntimeError("the integrations module is not loaded (add it to MODULES)")
    return integrations


def send_mail_later(app: FastAPI, message: MailMessage) -> None:
    """Queue a mail; the caller's answer does not wait for, or depend on, its delivery."""
    get_integrations(app).mail.submit(message)
