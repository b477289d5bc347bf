"""Integrations: every call that leaves the process, each behind its own circuit breaker.

Public surface (what other modules may import): `MailMessage`, `queue_mail`,
`register_mail_renderer`, `MailRenderer`, `is_password_breached`, `call_redis`, and the errors
an upstream call may raise.
"""

from pathlib import Path

from app.module import Module
from modules.integrations.exceptions import (
    CircuitOpenError,
    IntegrationError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)
from modules.integrations.health import circuits_check
from modules.integrations.mail import MailMessage
from modules.integrations.outbox import MailRenderer
from modules.integrations.service import (
    call_redis,
    is_password_breached,
    lifespan,
    queue_mail,
    register_mail_renderer,
)
from modules.integrations.settings import IntegrationsSettings

module = Module[IntegrationsSettings](
    name="integrations",
    settings_class=IntegrationsSettings,
    lifespan=lifespan,
    readiness_checks={"circuits": circuits_check},
    migrations=Path(__file__).parent / "migrations",
)

__all__ = [
    "CircuitOpenError",
    "IntegrationError",
    "MailMessage",
    "MailRenderer",
    "UpstreamError",
    "UpstreamRefusedError",
    "UpstreamTimeoutError",
    "call_redis",
    "is_password_breached",
    "module",
    "queue_mail",
    "register_mail_renderer",
]
