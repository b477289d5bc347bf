"""Integrations: every call that leaves the process, each behind its own circuit breaker.

Public surface (what other modules may import): `MailMessage`, `send_mail_later`,
`is_password_breached`, `call_redis`, and the errors an upstream call may raise.
"""

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
from modules.integrations.service import (
    call_redis,
    is_password_breached,
    lifespan,
    send_mail_later,
)
from modules.integrations.settings import IntegrationsSettings

module = Module[IntegrationsSettings](
    name="integrations",
    settings_class=IntegrationsSettings,
    lifespan=lifespan,
    readiness_checks={"circuits": circuits_check},
)

__all__ = [
    "CircuitOpenError",
    "IntegrationError",
    "MailMessage",
    "UpstreamError",
    "UpstreamRefusedError",
    "UpstreamTimeoutError",
    "call_redis",
    "is_password_breached",
    "module",
    "send_mail_later",
]
