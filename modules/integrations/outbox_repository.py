"""Every query on the mail outbox. Writes only flush: the caller commits (the job's edge)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, case, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from modules.integrations.outbox_models import OutboxMail


async def count(session: AsyncSession) -> int:
    return int((await session.execute(select(func.count()).select_from(OutboxMail))).scalar_one())


async def find_pending(session: AsyncSession, kind: str, ref: str, params: str) -> int | None:
    """The id of a mail of this kind, for this ref, with these params, that waits for a
    retry (one that was never tried is about to go: a new request gets its own mail)."""
    query = select(OutboxMail.id).where(
        OutboxMail.kind == kind,
        OutboxMail.ref == ref,
        OutboxMail.params == params,
        OutboxMail.attempts > 0,
    )
    return (await session.execute(query.limit(1))).scalar_one_or_none()


async def add(session: AsyncSession, kind: str, ref: str, params: str, now: datetime) -> None:
    session.add(
        OutboxMail(
            kind=kind,
            ref=ref,
            params=params,
            created_at=now,
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
        )
    )
    await session.flush()


def _free(now: datetime) -> ColumnElement[bool]:
    return or_(OutboxMail.claimed_until.is_(None), OutboxMail.claimed_until <= now)


async def due(session: AsyncSession, now: datetime, limit: int) -> list[int]:
    """Ids of the mails due now that nobody is sending, oldest due first."""
    query = (
        select(OutboxMail.id)
        .where(OutboxMail.next_attempt_at <= now, _free(now))
        .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def next_due_at(session: AsyncSession) -> datetime | None:
    """When the next mail may be taken: its due time, or its lease's end if one holds it."""
    moment = case(
        (OutboxMail.claimed_until > OutboxMail.next_attempt_at, OutboxMail.claimed_until),
        else_=OutboxMail.next_attempt_at,
    )
    query = select(func.min(moment, type_=DateTime(timezone=True)))
    value: datetime | None = (await session.execute(query)).scalar_one_or_none()
    return value


async def claim(session: AsyncSession, mail_id: int, now: datetime, until: datetime) -> bool:
    """Take one mail for sending; False when another process has it (one conditional
    update, so two processes never both win)."""
    result = await session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id, _free(now))
        .values(claimed_until=until)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def get(session: AsyncSession, mail_id: int) -> OutboxMail | None:
    return await session.get(OutboxMail, mail_id)


async def remove(session: AsyncSession, mail_id: int) -> None:
    await session.execute(delete(OutboxMail).where(OutboxMail.id == mail_id))
    await session.flush()


async def reschedule(
    session: AsyncSession, mail_id: int, attempts: int, next_attempt_at: datetime
) -> None:
    await session.execute(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id)
        .values(attempts=attempts, next_attempt_at=next_attempt_at, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
