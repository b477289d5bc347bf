"""Mail delivery backends: `ConsoleMailer` (development: prints, keeps an `outbox`) and
`SmtpMailer` (aiosmtplib). Both run behind the `mail` circuit, called by the outbox's drain
(outbox.py), never by a request.
"""

from __future__ import annotations

import ssl
import sys
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Protocol

import aiosmtplib

from modules.integrations.exceptions import (
    UpstreamError,
    UpstreamRefusedError,
    UpstreamTimeoutError,
)
from modules.integrations.mail_url import MailUrl

CIRCUIT = "mail"


@dataclass(frozen=True)
class MailMessage:
    """One mail: `body` is its plain-text part; `html`, when given, its HTML alternative (a
    reader's client shows one of the two, so both say the same)."""

    to: str
    subject: str
    body: str
    html: str | None = None


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
    """One SMTP session per mail: `smtps://` (TLS from the first byte), or `smtp://` upgraded
    with STARTTLS whenever the relay offers it (required with `?starttls=true`). Certificates
    and host names are verified (`tls_context`; MAIL_TLS_CA_FILE for a private CA).

    What counts against the relay (an `UpstreamError`): it cannot be reached, times out, fails
    TLS or AUTH, or answers a transient error outside RCPT. What does not (an
    `UpstreamRefusedError`, the circuit records a success): a refusal of this one message, so
    that no recipient address can open the circuit for everyone:
    - the recipient refused at RCPT (5xx: for good; 4xx: `temporary`, retried later);
    - an address the relay cannot take (non-ASCII without SMTPUTF8);
    - any other 5xx answer to this message (MAIL FROM, DATA).
    """

    def __init__(
        self, url: MailUrl, sender: str, timeout: float, tls_context: ssl.SSLContext
    ) -> None:
        self.url = url
        self.sender = sender
        self.timeout = timeout
        self.tls_context = tls_context

    def build(self, message: MailMessage) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.to
        mail["Subject"] = message.subject
        mail.set_content(message.body)
        if message.html is not None:
            mail.add_alternative(message.html, subtype="html")
        return mail

    async def send(self, message: MailMessage) -> None:
        try:
            mail = self.build(message)
        except ValueError as exc:  # an address the email package refuses to write
            raise UpstreamRefusedError(CIRCUIT, f"cannot write the mail ({exc})") from None
        url = self.url
        client = aiosmtplib.SMTP(
            hostname=url.host,
            port=url.port,
            username=url.username,
            password=url.password,
            use_tls=url.scheme == "smtps",
            # True: STARTTLS or fail. None: aiosmtplib upgrades whenever the relay offers it
            # (False would turn that off and send credentials and tokens in clear).
            start_tls=True if url.starttls else None,
            tls_context=self.tls_context,
            timeout=self.timeout,
        )
        try:
            # Connect, STARTTLS, AUTH: anything failing here is the relay's failure.
            await client.connect()
        except RELAY_ERRORS as exc:
            raise relay_failure(exc) from None
        try:
            await client.send_message(mail)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = sorted({refused.code for refused in exc.recipients})
            raise UpstreamRefusedError(
                CIRCUIT,
                f"recipient refused ({', '.join(map(str, codes))})",
                temporary=all(400 <= code < 500 for code in codes),
            ) from None
        except aiosmtplib.SMTPNotSupported:
            raise UpstreamRefusedError(CIRCUIT, "the relay cannot take this address") from None
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise UpstreamRefusedError(CIRCUIT, f"refused the mail ({exc.code})") from None
            raise relay_failure(exc) from None
        except RELAY_ERRORS as exc:
            raise relay_failure(exc) from None
        finally:
            client.close()


RELAY_ERRORS = (aiosmtplib.SMTPException, OSError, TimeoutError)


def relay_failure(exc: Exception) -> UpstreamError:
    """Our error for a failure of the relay; never aiosmtplib's (its text may echo input)."""
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return UpstreamTimeoutError(CIRCUIT, "timed out")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return UpstreamError(CIRCUIT, f"answered {exc.code}")
    reason = type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ssl.SSLError):  # e.g. an untrusted certificate, wrapped
        reason = f"{reason}: {type(cause).__name__}"
    return UpstreamError(CIRCUIT, f"delivery failed: {reason}")
