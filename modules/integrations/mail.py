"""Mail delivery. Sending happens after the API has answered: it never blocks or changes it."""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from loguru import logger


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


class BackgroundSender:
    """Runs deliveries as tasks owned by the app, and waits for them at shutdown."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, message: MailMessage) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, message: MailMessage) -> None:
        try:
            await self.mailer.send(message)
        except Exception as exc:
            # The recipient's address is personal data: log the subject, not who.
            logger.warning("mail delivery failed: {} ({})", message.subject, type(exc).__name__)
        else:
            logger.info("mail sent: {}", message.subject)

    async def drain(self, grace_seconds: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)
