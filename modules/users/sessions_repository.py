"""Every query on login sessions and rotated refresh tokens (and nothing else)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Executable, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from modules.users.models import LoginSession, RotatedRefreshToken, User


def _is_live(now: datetime) -> list[ColumnElement[bool]]:
    return [LoginSession.revoked_at.is_(None), LoginSession.expires_at > now]


async def _rowcount(db: AsyncSession, statement: Executable) -> int:
    result = await db.execute(statement)
    return cast(CursorResult[Any], result).rowcount


def add_session(db: AsyncSession, login: LoginSession) -> None:
    db.add(login)


async def is_live(
    db: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> bool:
    found = await db.scalar(
        select(LoginSession.id).where(
            LoginSession.id == session_id, LoginSession.user_id == user_id, *_is_live(now)
        )
    )
    return found is not None


async def list_live(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> list[LoginSession]:
    rows = await db.scalars(
        select(LoginSession)
        .where(LoginSession.user_id == user_id, *_is_live(now))
        .order_by(LoginSession.last_used_at.desc(), LoginSession.id)
    )
    return list(rows)


async def session_id_for_refresh_hash(db: AsyncSession, token_hash: str) -> uuid.UUID | None:
    """The session whose current refresh token has this hash (live or not)."""
    found: uuid.UUID | None = await db.scalar(
        select(LoginSession.id).where(LoginSession.refresh_token_hash == token_hash)
    )
    return found


async def rotate(
    db: AsyncSession,
    session_id: uuid.UUID,
    old_hash: str,
    new_hash: str,
    now: datetime,
) -> LoginSession | None:
    """Swap the refresh hash in one conditional UPDATE: of racing callers exactly one wins.

    The WHERE clause re-checks the old hash and liveness at write time, so no read-then-write
    window exists. The old hash is recorded as rotated in the same transaction.
    """
    won = await _rowcount(
        db,
        update(LoginSession)
        .where(
            LoginSession.id == session_id,
            LoginSession.refresh_token_hash == old_hash,
            *_is_live(now),
        )
        .values(refresh_token_hash=new_hash, last_used_at=now)
        .execution_options(synchronize_session=False),
    )
    if won != 1:
        return None
    db.add(RotatedRefreshToken(token_hash=old_hash, session_id=session_id, rotated_at=now))
    return (
        await db.scalars(
            select(LoginSession)
            .where(LoginSession.id == session_id)
            .execution_options(populate_existing=True)
        )
    ).one()


async def rotated_owner(db: AsyncSession, token_hash: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """(session id, user id) of the session a rotated refresh token belonged to."""
    row = (
        await db.execute(
            select(LoginSession.id, LoginSession.user_id)
            .join(RotatedRefreshToken, RotatedRefreshToken.session_id == LoginSession.id)
            .where(RotatedRefreshToken.token_hash == token_hash)
        )
    ).first()
    return None if row is None else (row[0], row[1])


async def revoke(
    db: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, now: datetime
) -> bool:
    """End one live session of this user; False when there is none such."""
    ended = await _rowcount(
        db,
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.user_id == user_id, *_is_live(now))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False),
    )
    return ended == 1


async def revoke_all(
    db: AsyncSession, user_id: uuid.UUID, now: datetime, keep: uuid.UUID | None = None
) -> int:
    spared = [] if keep is None else [LoginSession.id != keep]
    return await _rowcount(
        db,
        update(LoginSession)
        .where(LoginSession.user_id == user_id, *_is_live(now), *spared)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False),
    )


async def purge_expired(db: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    """Delete this user's sessions past their absolute end (their rotated hashes cascade):
    nothing can use them any more, so reuse detection loses nothing."""
    return await _rowcount(
        db,
        delete(LoginSession)
        .where(LoginSession.user_id == user_id, LoginSession.expires_at <= now)
        .execution_options(synchronize_session=False),
    )


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await db.get(User, user_id)
