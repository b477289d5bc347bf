"""Every query on login sessions and rotated refresh tokens (and nothing else)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Executable,
    Select,
    and_,
    delete,
    or_,
    select,
    update,
)
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


async def list_live(
    db: AsyncSession,
    user_id: uuid.UUID,
    now: datetime,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[LoginSession]:
    """Newest login first, then by id: an order no refresh changes, so pages never shift.
    `after` is the (created_at, id) of the last session of the previous page."""
    position = []
    if after is not None:
        created_at, session_id = after
        position.append(
            or_(
                LoginSession.created_at < created_at,
                and_(LoginSession.created_at == created_at, LoginSession.id < session_id),
            )
        )
    rows = await db.scalars(
        select(LoginSession)
        .where(LoginSession.user_id == user_id, *_is_live(now), *position)
        .order_by(LoginSession.created_at.desc(), LoginSession.id.desc())
        .limit(limit)
    )
    return list(rows)


async def lock_user(db: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialise this user's logins until the transaction ends (PostgreSQL: a row lock), so
    the session cap counts every concurrent login. SQLite needs none: its writers are
    serialised already, and SQLAlchemy leaves the lock clause out there. FOR NO KEY UPDATE:
    logins of the user wait for each other, but nothing that merely references the user
    (a foreign key check) waits for a login."""
    user_id_column = User.__table__.c["id"]
    await db.execute(
        select(user_id_column).where(user_id_column == user_id).with_for_update(key_share=True)
    )


async def live_beyond(
    db: AsyncSession, user_id: uuid.UUID, now: datetime, keep: int
) -> list[uuid.UUID]:
    """Ids of this user's live sessions past the `keep` newest (by login time)."""
    rows = await db.scalars(
        select(LoginSession.id)
        .where(LoginSession.user_id == user_id, *_is_live(now))
        .order_by(LoginSession.created_at.desc(), LoginSession.id.desc())
        .offset(keep)
    )
    return list(rows)


async def revoke_many(db: AsyncSession, session_ids: list[uuid.UUID], now: datetime) -> None:
    if session_ids:
        await db.execute(
            update(LoginSession)
            .where(LoginSession.id.in_(session_ids), *_is_live(now))
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class RefreshState:
    """What a refresh needs to know before it writes anything."""

    session_id: uuid.UUID
    user_id: uuid.UUID
    generation: int
    user_active: bool


def _refresh_state() -> Select[tuple[uuid.UUID, uuid.UUID, int, bool]]:
    return select(
        LoginSession.id,
        LoginSession.user_id,
        LoginSession.refresh_generation,
        User.__table__.c["is_active"],
    ).join(User, User.__table__.c["id"] == LoginSession.user_id)


async def refresh_state(db: AsyncSession, session_id: uuid.UUID) -> RefreshState | None:
    """The session (live or not) and whether its user is active, in one read."""
    row = (await db.execute(_refresh_state().where(LoginSession.id == session_id))).first()
    return None if row is None else RefreshState(*row)


async def refresh_state_by_hash(db: AsyncSession, token_hash: str) -> RefreshState | None:
    """The same, for the session whose current token has this hash (old-format tokens)."""
    row = (
        await db.execute(_refresh_state().where(LoginSession.refresh_token_hash == token_hash))
    ).first()
    return None if row is None else RefreshState(*row)


async def generation_of(db: AsyncSession, session_id: uuid.UUID) -> int | None:
    found: int | None = await db.scalar(
        select(LoginSession.refresh_generation).where(LoginSession.id == session_id)
    )
    return found


async def rotate(
    db: AsyncSession,
    session_id: uuid.UUID,
    generation: int,
    old_hash: str,
    new_hash: str,
    now: datetime,
) -> LoginSession | None:
    """Move the session to the next generation in one conditional UPDATE: of racing callers
    exactly one wins. The WHERE clause re-checks generation, hash and liveness at write time
    (no read-then-write window), and RETURNING hands the row back in the same statement, so
    the write lock is held for this statement and the commit only. The row is updated in
    place: however often a session refreshes, it stays one row.
    """
    login: LoginSession | None = await db.scalar(
        update(LoginSession)
        .where(
            LoginSession.id == session_id,
            LoginSession.refresh_generation == generation,
            LoginSession.refresh_token_hash == old_hash,
            *_is_live(now),
        )
        .values(refresh_generation=generation + 1, refresh_token_hash=new_hash, last_used_at=now)
        .returning(LoginSession),
        execution_options={"synchronize_session": False, "populate_existing": True},
    )
    return login


def record_rotated(db: AsyncSession, token_hash: str, session_id: uuid.UUID, now: datetime) -> None:
    """An old-format token rotated away (the first rotation of a session from before)."""
    db.add(RotatedRefreshToken(token_hash=token_hash, session_id=session_id, rotated_at=now))


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


def _ended_before(cutoff: datetime) -> ColumnElement[bool]:
    """Revoked, or past the absolute end, at or before `cutoff`."""
    return or_(LoginSession.expires_at <= cutoff, LoginSession.revoked_at <= cutoff)


async def purge_ended(db: AsyncSession, user_id: uuid.UUID, cutoff: datetime) -> int:
    """Delete this user's sessions that ended at or before `cutoff` (their rotated hashes
    cascade). What is lost: replaying a token of such a session answers REFRESH_TOKEN_INVALID
    instead of REFRESH_TOKEN_REUSED; the session was over either way, and the log has kept
    why."""
    return await _rowcount(
        db,
        delete(LoginSession)
        .where(LoginSession.user_id == user_id, _ended_before(cutoff))
        .execution_options(synchronize_session=False),
    )


async def purge_ended_batch(db: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` sessions of anyone that ended at or before `cutoff`, and their
    rotated refresh tokens (explicitly: not every database enforces the cascade). Live
    sessions, and the rotated tokens reuse detection needs for them, are never touched."""
    ids = list(await db.scalars(select(LoginSession.id).where(_ended_before(cutoff)).limit(limit)))
    if not ids:
        return 0
    await db.execute(
        delete(RotatedRefreshToken)
        .where(RotatedRefreshToken.session_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    return await _rowcount(
        db,
        delete(LoginSession)
        .where(LoginSession.id.in_(ids))
        .execution_options(synchronize_session=False),
    )


async def get_user(db: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await db.get(User, user_id)
