"""Integrations: every call that leaves the process, each behind its own circuit breaker.

Public surface (what other modules may import): `MailMessage`, `send_mail_later`.
"""

from app.module import Module
from modules.integrations.mail import MailMessage
from modules.integrations.service import lifespan, send_mail_later
from modules.integrations.settings import IntegrationsSettings

module = Module(
    name="integrations",
    settings_class=IntegrationsSettings,
    lifespan=lifespan,
)

__all__ = ["MailMessage", "module", "send_mail_later"]
