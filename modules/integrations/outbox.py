"""The mail outbox: mail waits in the database until the relay takes it.

Why: a mail that cannot go now (relay down or slow, its circuit open) must not be lost, and
must survive a restart. So a module never sends; it queues *what* to send (`queue_mail`: a
kind, e.g. `users.reset_password`, a ref such as a user id, a few params) in the caller's
transaction, and registers a renderer per kind (`register_mail_renderer`) that builds the
mail when it is sent, minting its token then: no token is ever at rest, and a token's
lifetime starts when its mail leaves.

A drain (a task the integrations module starts and stops) sends what is due: at once when a
queueing transaction commits, otherwise every MAIL_OUTBOX_POLL seconds; the app's background
drain (app/background.py) flushes it too, so at shutdown what the last jobs queued goes out
before the modules close. Each mail:
- sent: deleted (`mail sent: <kind>`);
- refused by the relay for good (recipient unknown, address it cannot take): deleted, logged
  as a WARNING (`mail refused, not retried`): retrying would change nothing;
- the relay failed, or refused for now (4xx at RCPT), or the renderer failed: retried after
  MAIL_RETRY_BASE * 2^(attempt-1) seconds (at most MAIL_RETRY_MAX, ±20 % jitter); after
  MAIL_MAX_ATTEMPTS tries it is deleted and logged as an ERROR (`mail given up`);
- the circuit is open: nothing is tried (no attempt counted) until its trial is due;
- the renderer says it no longer applies (account gone, already verified): deleted, logged.
Bounds: MAIL_QUEUE_MAX rows (past it a new mail is refused and logged as an ERROR); while a
mail waits for a retry (the relay is down), asking for the same (kind, ref, params) again
queues nothing more: ten reset requests during an outage make one mail, not ten.

Several instances may drain one database: a mail is claimed by one conditional update
(`claimed_until`, a lease), so two instances never send it both; a process that dies
mid-send leaves the lease to expire, and the mail is sent again (at most once more).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from fastapi import FastAPI
from loguru import logger
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database
from app.metrics import count_job_failure
from modules.integrations import outbox_repository as repository
from modules.integrations.circuit import Circuit
from modules.integrations.exceptions import CircuitOpenError, UpstreamRefusedError
from modules.integrations.mail import Mailer, MailMessage
from modules.integrations.outbox_models import OutboxMail
from modules.integrations.settings import IntegrationsSettings

# (ref, params) -> the mail to send now, or None when it no longer applies.
MailRenderer = Callable[[str, Mapping[str, str]], Awaitable[MailMessage | None]]

BATCH = 50  # mails claimed per look
MIN_WAIT_SECONDS = 0.05
STARTUP_WAIT_SECONDS = 1.0
MIN_CIRCUIT_WAIT_SECONDS = 0.2  # another call is the half-open trial: look again soon


def mail_renderers(app: FastAPI) -> dict[str, MailRenderer]:
    """The app's renderers by kind; whichever module starts first creates the registry."""
    renderers: dict[str, MailRenderer] | None = getattr(app.state, "mail_renderers", None)
    if renderers is None:
        renderers = app.state.mail_renderers = {}
    return renderers


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes (stored in UTC).
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class MailOutbox:
    def __init__(
        self,
        database: Database,
        mailer: Mailer,
        circuit: Circuit,
        settings: IntegrationsSettings,
        renderers: dict[str, MailRenderer],
    ) -> None:
        self.database = database
        self.mailer = mailer
        self.circuit = circuit
        self.settings = settings
        self.renderers = renderers
        self.lease = timedelta(seconds=max(60.0, 3 * settings.mail_timeout))
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The drain failed last time: its warning is said once per outage, not every poll
        # (a database down or a schema behind the code for minutes would repeat it each look).
        self._failing = False

    # Queueing (the caller's transaction) ---------------------------------------------------

    async def queue(
        self, session: AsyncSession, kind: str, ref: str, params: Mapping[str, str]
    ) -> None:
        """Add a mail to `session` (flushed, not committed); the drain is woken when the
        caller commits."""
        encoded = json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
        if await repository.find_pending(session, kind, ref, encoded) is None:
            if await repository.count(session) >= self.settings.mail_queue_max:
                logger.error(
                    "mail queue full ({} mails): {} not queued", self.settings.mail_queue_max, kind
                )
                return
            await repository.add(session, kind, ref, encoded, utcnow())
        if not event.contains(session.sync_session, "after_commit", self._on_commit):
            event.listen(session.sync_session, "after_commit", self._on_commit)

    def _on_commit(self, _session: Any) -> None:
        self._wake.set()

    # The drain (a background task) ---------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(self._stopping))

    async def stop(self) -> None:
        """End the loop (at the module's shutdown, after the app's drain has flushed the
        outbox): the mail being sent is finished first, within MAIL_TIMEOUT; past that it is
        cancelled and keeps its lease, to be sent after the next start."""
        if self._task is None:
            return
        self._stopping.set()
        done, _ = await asyncio.wait({self._task}, timeout=self.settings.mail_timeout + 1)
        if not done:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def flush(self) -> None:
        """Send what is due now (the app's drain: before shutdown, or a test waiting for
        its background work). Runs beside the loop: claims keep them from sending one mail
        twice."""
        while await self.drain_once() == 0.0:
            pass

    async def _run(self, stopping: asyncio.Event) -> None:
        # The first look waits for the app to have started (the modules that register
        # renderers start after this one) or for a queued mail's commit, whichever is first.
        await self._sleep(min(STARTUP_WAIT_SECONDS, self.settings.mail_outbox_poll), stopping)
        while not stopping.is_set():
            self._wake.clear()
            try:
                wait = await self.drain_once()
            except Exception as exc:  # e.g. the database is down: look again later
                count_job_failure("mail outbox")
                wait = self.settings.mail_outbox_poll
                if not self._failing:
                    self._failing = True
                    logger.warning(
                        "mail outbox: drain failed ({}); looking again every {:g} s, "
                        "quietly until it works",
                        type(exc).__name__,
                        wait,
                    )
            else:
                if self._failing:
                    self._failing = False
                    logger.info("mail outbox: drain works again")
            await self._sleep(wait, stopping)

    async def _sleep(self, seconds: float, stopping: asyncio.Event) -> None:
        waiters = {
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stopping.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def drain_once(self) -> float:
        """Send what is due; return the seconds until the next look."""
        async with self.database.sessionmaker() as session:
            due = await repository.due(session, utcnow(), BATCH)
        for mail_id in due:
            retry_after = await self._send_one(mail_id)
            if retry_after is not None:  # circuit open: nothing goes before its trial
                return max(retry_after, MIN_WAIT_SECONDS)
        if len(due) == BATCH:
            return 0.0
        async with self.database.sessionmaker() as session:
            next_at = await repository.next_due_at(session)
        if next_at is None:
            return self.settings.mail_outbox_poll
        wait = (as_utc(next_at) - utcnow()).total_seconds()
        return min(max(wait, MIN_WAIT_SECONDS), self.settings.mail_outbox_poll)

    async def _send_one(self, mail_id: int) -> float | None:
        """One mail, in its own transactions (claim, then outcome). Returns the circuit's
        retry-after when it is open."""
        async with self.database.sessionmaker() as session:
            now = utcnow()
            if not await repository.claim(session, mail_id, now, now + self.lease):
                return None  # another process has it
            await session.commit()
            mail = await repository.get(session, mail_id)
            if mail is None:
                return None
            retry_after = await self._attempt(session, mail)
            await session.commit()
            return retry_after

    async def _attempt(self, session: AsyncSession, mail: OutboxMail) -> float | None:
        kind = mail.kind
        log = logger.bind(circuit=self.circuit.name)
        if (wait := await self.circuit.open_for()) > 0:
            return await self._wait_for_circuit(session, mail, wait)
        renderer = self.renderers.get(kind)
        try:
            if renderer is None:
                raise LookupError(f"no renderer for mail kind {kind}")
            message = await renderer(mail.ref, json.loads(mail.params))
        except Exception as exc:
            await self._failed(session, mail, f"cannot render it: {type(exc).__name__}")
            return None
        if message is None:
            await repository.remove(session, mail.id)
            logger.info("mail dropped: {} no longer applies", kind)
            return None
        try:
            await self.circuit.call(partial(self.mailer.send, message))
        except CircuitOpenError as exc:
            # Opened meanwhile (or another call is its trial): the token just minted is
            # thrown away, it never left the process.
            return await self._wait_for_circuit(session, mail, exc.retry_after)
        except UpstreamRefusedError as exc:
            if exc.temporary:
                await self._failed(session, mail, f"{type(exc).__name__}: {exc}")
                return None
            await repository.remove(session, mail.id)
            # The recipient's address is personal data: the kind, not who.
            log.warning("mail refused, not retried: {} ({})", kind, exc)
            return None
        except Exception as exc:
            await self._failed(session, mail, f"{type(exc).__name__}: {exc}")
            return None
        await repository.remove(session, mail.id)
        log.info("mail sent: {}", kind)
        return None

    async def _wait_for_circuit(
        self, session: AsyncSession, mail: OutboxMail, retry_after: float
    ) -> float:
        """Not an attempt (nothing was tried): the mail waits for the circuit's trial."""
        wait = max(retry_after, MIN_CIRCUIT_WAIT_SECONDS)
        await repository.reschedule(
            session, mail.id, mail.attempts, utcnow() + timedelta(seconds=wait)
        )
        logger.bind(circuit=self.circuit.name).info(
            "mail waits: {} (circuit open, next try in {:.1f} s)", mail.kind, wait
        )
        return wait

    async def _failed(self, session: AsyncSession, mail: OutboxMail, reason: str) -> None:
        attempts = mail.attempts + 1
        log = logger.bind(circuit=self.circuit.name)
        if attempts >= self.settings.mail_max_attempts:
            await repository.remove(session, mail.id)
            log.error("mail given up after {} attempts: {} ({})", attempts, mail.kind, reason)
            return
        wait = self.backoff(attempts)
        await repository.reschedule(session, mail.id, attempts, utcnow() + timedelta(seconds=wait))
        log.warning(
            "mail delivery failed: {} ({}); attempt {} of {}, next in {:.1f} s",
            mail.kind,
            reason,
            attempts,
            self.settings.mail_max_attempts,
            wait,
        )

    def backoff(self, attempts: int) -> float:
        base = self.settings.mail_retry_base * 2.0 ** (attempts - 1)
        jitter = random.uniform(0.8, 1.2)  # spreads the retries of many mails
        return float(min(base, self.settings.mail_retry_max) * jitter)
