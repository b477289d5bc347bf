"""Mail delivery. Sending happens after the API has answered: it never blocks or changes it.

Two backends: `ConsoleMailer` (development: prints, keeps an `outbox`) and `SmtpMailer`
(aiosmtplib). Both run behind the `mail` circuit (see `BackgroundSender`).
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
from loguru import logger

from app.background import BackgroundTasks
from modules.integrations.circuit import Circuit
from modules.integrations.exceptions import (
    IntegrationError,
    UpstreamError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)
from modules.integrations.mail_url import MailUrl

CIRCUIT = "mail"


@dataclass(frozen=True)
class MailMessage:
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    async def send(self, message: MailMessage) -> None: ...


class ConsoleMailer:
    """Development only: prints each mail to standard output (not the log: it holds a token).

    The last mails are also kept in `outbox`, so a developer (or a test) can pick up a link.
    """

    def __init__(self, keep: int = 100) -> None:
        self.outbox: deque[MailMessage] = deque(maxlen=keep)

    async def send(self, message: MailMessage) -> None:
        self.outbox.append(message)
        sys.stdout.write(
            f"\n----- mail to {message.to}: {message.subject} -----\n{message.body}\n-----\n"
        )
        sys.stdout.flush()


class SmtpMailer:
    """One SMTP session per mail: plain (`smtp://`), TLS (`smtps://`) or STARTTLS upgrade.

    Connection errors, timeouts and transient (4xx) replies are failures of the upstream; a
    permanent (5xx) reply refuses this one mail (a bad recipient) and does not count.
    """

    def __init__(self, url: MailUrl, sender: str, timeout: float) -> None:
        self.url = url
        self.sender = sender
        self.timeout = timeout

    def build(self, message: MailMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        return mail

    async def send(self, message: MailMessage) -> None:
        url = self.url
        try:
            await aiosmtplib.send(
                self.build(message),
                hostname=url.host,
                port=url.port,
                username=url.username,
                password=url.password,
                use_tls=url.scheme == "smtps",
                # smtp:// means plain SMTP: no opportunistic upgrade unless asked for.
                start_tls=url.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPTimeoutError:
            raise UpstreamTimeoutError(CIRCUIT, "timed out") from None
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600 and not isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                raise UpstreamRefusedError(CIRCUIT, f"refused the mail ({exc.code})") from None
            raise UpstreamError(CIRCUIT, f"answered {exc.code}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise UpstreamError(CIRCUIT, f"delivery failed: {type(exc).__name__}") from None


class BackgroundSender:
    """Delivers each mail as an app background task (app/background.py), behind the mail
    circuit: the API's answer never waits for, or depends on, the delivery."""

    def __init__(self, mailer: Mailer, circuit: Circuit, tasks: BackgroundTasks) -> None:
        self.mailer = mailer
        self.circuit = circuit
        self.tasks = tasks

    def submit(self, message: MailMessage) -> None:
        self.tasks.submit("mail", self._deliver(message))

    async def _deliver(self, message: MailMessage) -> None:
        async def send() -> None:
            await self.mailer.send(message)

        try:
            await self.circuit.call(send)
        except IntegrationError as exc:
            # The recipient's address is personal data: log the subject, not who.
            logger.bind(circuit=self.circuit.name).warning(
                "mail delivery failed: {} ({}: {})", message.subject, type(exc).__name__, exc
            )
        except Exception as exc:
            logger.bind(circuit=self.circuit.name).warning(
                "mail delivery failed: {} ({})", message.subject, type(exc).__name__
            )
        else:
            logger.info("mail sent: {}", message.subject)
