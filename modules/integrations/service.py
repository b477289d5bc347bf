"""The integrations module's runtime: what its lifespan opens, what other modules use."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from fastapi import FastAPI
from loguru import logger
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from app.background import background_tasks
from app.logging import register_secret
from app.module import ModuleContext
from modules.integrations import mail, pwned
from modules.integrations import redis_calls as redis_calls_module
from modules.integrations.breakers import Breakers
from modules.integrations.exceptions import IntegrationError, UpstreamError, UpstreamTimeoutError
from modules.integrations.http import UpstreamClient
from modules.integrations.mail import ConsoleMailer, Mailer, SmtpMailer
from modules.integrations.outbox import MailOutbox, MailRenderer, mail_renderers
from modules.integrations.pwned import PwnedPasswords
from modules.integrations.redis_calls import RedisCalls
from modules.integrations.settings import IntegrationsSettings, check_mail_allowed


@dataclass
class Integrations:
    settings: IntegrationsSettings
    breakers: Breakers
    mail: MailOutbox
    pwned: PwnedPasswords | None
    redis: RedisCalls | None


def build_mailer(settings: IntegrationsSettings, environment: str) -> Mailer:
    url = settings.mail
    check_mail_allowed(url, environment)
    if url.scheme == "console":
        return ConsoleMailer()
    if url.password:
        register_secret(url.password)
    # Certificates and host names verified; MAIL_TLS_CA_FILE replaces the system's CAs.
    tls_context = ssl.create_default_context(
        cafile=str(settings.mail_tls_ca_file) if settings.mail_tls_ca_file else None
    )
    return SmtpMailer(url, settings.mail_from, settings.mail_timeout, tls_context)


@asynccontextmanager
async def lifespan(context: ModuleContext[IntegrationsSettings]) -> AsyncIterator[None]:
    settings = context.settings
    mailer = build_mailer(settings, context.core.environment)
    breakers = Breakers(
        threshold=settings.breaker_threshold,
        ttl=settings.breaker_ttl,
        redis_url=context.core.redis_url,
    )
    async with AsyncExitStack() as stack:
        stack.push_async_callback(breakers.close)
        pwned_passwords = None
        if settings.pwned_passwords_url:
            pwned_passwords = PwnedPasswords(
                UpstreamClient(
                    breakers.circuit(pwned.CIRCUIT),
                    settings.pwned_passwords_url,
                    timeout=settings.pwned_passwords_timeout,
                )
            )
            stack.push_async_callback(pwned_passwords.aclose)
        outbox = MailOutbox(
            context.database,
            mailer,
            breakers.circuit(mail.CIRCUIT),
            settings,
            mail_renderers(context.app),
        )
        redis_calls = None
        if context.core.redis_url:
            redis_calls = RedisCalls(
                breakers.local_circuit(redis_calls_module.CIRCUIT), settings.redis_timeout
            )
        await breakers.start()
        context.app.state.integrations = Integrations(
            settings=settings,
            breakers=breakers,
            mail=outbox,
            pwned=pwned_passwords,
            redis=redis_calls,
        )
        # The app's drain (at shutdown, before any module closes) sends what its jobs queued;
        # what is left waits in the database for the next start.
        background_tasks(context.app).on_drain("mail outbox", outbox.flush)
        outbox.start()
        stack.push_async_callback(outbox.stop)
        yield


def get_integrations(app: FastAPI) -> Integrations:
    integrations: Integrations | None = getattr(app.state, "integrations", None)
    if integrations is None:
        raise RuntimeError("the integrations module is not loaded (add it to MODULES)")
    return integrations


async def queue_mail(
    app: FastAPI,
    session: AsyncSession,
    kind: str,
    ref: str,
    params: Mapping[str, str] | None = None,
) -> None:
    """Queue a mail in the caller's transaction (flushed; the caller commits). Store what
    the renderer of `kind` needs (`ref`, e.g. a user id; small `params`), never a token:
    the renderer mints it when the mail is sent. See outbox.py."""
    await get_integrations(app).mail.queue(session, kind, ref, params or {})


def register_mail_renderer(app: FastAPI, kind: str, renderer: MailRenderer) -> None:
    """Build mails of `kind` when they are sent; called from a module's lifespan."""
    mail_renderers(app)[kind] = renderer


async def is_password_breached(app: FastAPI, password: str) -> bool | None:
    """True when the password appears in known data breaches.

    None means the check was skipped: PWNED_PASSWORDS_URL unset (or the module not loaded:
    silently), the upstream down, its circuit open, or an unexpected answer (logged).
    """
    integrations: Integrations | None = getattr(app.state, "integrations", None)
    if integrations is None or integrations.pwned is None:
        return None
    try:
        return await integrations.pwned.times_breached(password) > 0
    except IntegrationError as exc:
        logger.bind(circuit=exc.circuit).warning(
            "breached-password check skipped: {} ({})", type(exc).__name__, exc
        )
        return None


T = TypeVar("T")

# Without the integrations module (or before its lifespan ran): the same timeout, no circuit.
DEFAULT_REDIS_TIMEOUT = 0.25


async def call_redis(app: FastAPI | None, operation: Callable[[], Awaitable[T]]) -> T:
    """Run a Redis operation of another module behind the `redis` circuit, with REDIS_TIMEOUT.

    Raises an `IntegrationError` when Redis is unreachable, slow or its circuit is open: the
    caller decides what to do without Redis (the rate limits fall back to process memory).
    """
    integrations: Integrations | None = getattr(app.state, "integrations", None) if app else None
    if integrations is not None and integrations.redis is not None:
        return await integrations.redis.run(operation)
    try:
        return await asyncio.wait_for(operation(), DEFAULT_REDIS_TIMEOUT)
    except TimeoutError:
        raise UpstreamTimeoutError(redis_calls_module.CIRCUIT, "no answer in time") from None
    except (RedisError, OSError) as exc:
        raise UpstreamError(redis_calls_module.CIRCUIT, type(exc).__name__) from None
