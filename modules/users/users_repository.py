"""Every query on the user table: fastapi-users' adapter on canonical addresses, the
conditional updates that make mailed tokens single-use, and the administrators' list."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from fastapi_users import exceptions
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from sqlalchemy import CursorResult, Table, and_, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from modules.users.emails import canonical_email
from modules.users.models import User

# fastapi-users types the columns as plain attributes for mypy: queries go through the table.
USER_TABLE = cast(Table, User.__table__)


def _is_email_clash(exc: IntegrityError) -> bool:
    # SQLite: "UNIQUE constraint failed: user.email"; PostgreSQL: ... "ix_user_email".
    return "email" in str(exc.orig)


class UserDatabase(SQLAlchemyUserDatabase[User, uuid.UUID]):
    """fastapi-users' SQLAlchemy adapter, with one canonical form of every address, that
    flushes where the library commits: the request's unit of work (app/database.py) commits
    once, so a password change and the end of the other sessions commit together or not at all.

    The lookup is an exact match on the canonical form (never the database's `lower()`), and
    what is written is canonical, so the unique index on `email` is the uniqueness of the
    address. Two registrations that race past the existence check meet that index: the loser's
    IntegrityError becomes fastapi-users' UserAlreadyExists (its standard 400), never a 500.
    The write runs in a SAVEPOINT: the clash undoes that write only, the transaction goes on.
    """

    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, User)

    async def get_by_email(self, email: str) -> User | None:
        statement = select(User).where(USER_TABLE.c.email == canonical_email(email))
        return await self._get_user(statement)

    async def create(self, create_dict: dict[str, Any]) -> User:
        create_dict = {**create_dict, "email": canonical_email(create_dict["email"])}
        user = User(**create_dict)
        try:
            async with self.session.begin_nested():
                self.session.add(user)
        except IntegrityError as exc:
            if _is_email_clash(exc):
                raise exceptions.UserAlreadyExists() from None
            raise
        await self.session.refresh(user)
        return user

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        if "email" in update_dict:
            update_dict = {**update_dict, "email": canonical_email(update_dict["email"])}
        try:
            async with self.session.begin_nested():
                for key, value in update_dict.items():
                    setattr(user, key, value)
                self.session.add(user)
        except IntegrityError as exc:
            if _is_email_clash(exc):
                raise exceptions.UserAlreadyExists() from None
            raise
        await self.session.refresh(user)
        return user

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()


async def update_if_unchanged(
    db: AsyncSession, user: User, expected: dict[str, Any], values: dict[str, Any]
) -> bool:
    """One conditional UPDATE: set `values` on the user's row only while each column in
    `expected` still holds the given value. Of racing callers exactly one wins (the WHERE is
    re-checked at write time); the request's unit of work commits. Returns whether this one won."""
    columns = USER_TABLE.c
    statement = (
        update(USER_TABLE)
        .where(columns.id == user.id, *(columns[name] == value for name, value in expected.items()))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await db.execute(statement))
    won = result.rowcount == 1
    if won:
        await db.flush()
    return won


async def update_email_unless(
    db: AsyncSession, user_id: uuid.UUID, unless_email: str, values: dict[str, Any]
) -> bool:
    """The undo of an email change: restore only while the account is not at `unless_email`
    already (so one undo token restores once), for an active account."""
    columns = USER_TABLE.c
    statement = (
        update(USER_TABLE)
        .where(columns.id == user_id, columns.email != unless_email, columns.is_active.is_(True))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    try:
        async with db.begin_nested():  # a clash undoes this statement only
            result = cast(CursorResult[Any], await db.execute(statement))
    except IntegrityError as exc:
        if _is_email_clash(exc):
            raise exceptions.UserAlreadyExists() from None
        raise
    return result.rowcount == 1


async def reload(db: AsyncSession, user: User) -> User:
    await db.refresh(user)
    return user


@dataclass(frozen=True)
class UserFilter:
    """What GET /users narrows the list to; None: no condition."""

    email_contains: str | None = None
    is_active: bool | None = None
    is_verified: bool | None = None
    is_superuser: bool | None = None


async def list_users(
    db: AsyncSession,
    where: UserFilter,
    limit: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> list[User]:
    """Newest account first, then by id: a total order that new accounts never shift (they
    land before the first page), so a client walking the pages sees each account once.
    `after` is the (created_at, id) of the last account of the previous page. The index
    `ix_user_created_at_id` serves the order; the email filter is a substring match on the
    canonical address (`%` and `_` in it are literal)."""
    columns = USER_TABLE.c
    conditions = []
    if where.email_contains:
        conditions.append(columns.email.contains(where.email_contains, autoescape=True))
    for name in ("is_active", "is_verified", "is_superuser"):
        value = getattr(where, name)
        if value is not None:
            conditions.append(columns[name].is_(value))
    if after is not None:
        created_at, user_id = after
        conditions.append(
            or_(
                columns.created_at < created_at,
                and_(columns.created_at == created_at, columns.id < user_id),
            )
        )
    rows = await db.scalars(
        select(User)
        .where(*conditions)
        .order_by(columns.created_at.desc(), columns.id.desc())
        .limit(limit)
    )
    return list(rows)


async def lock_account(db: AsyncSession, user_id: uuid.UUID) -> bool:
    """A no-op write on the user's row: it waits for whoever is changing or deleting the row
    (PostgreSQL's row lock, SQLite's write lock) and says whether the row is still there. Before
    a deletion, so of two requests deleting one account the second finds it gone (404) rather
    than deleting nothing and telling of a deletion twice."""
    columns = USER_TABLE.c
    statement = (
        update(USER_TABLE)
        .where(columns.id == user_id)
        .values(is_active=columns.is_active)
        .execution_options(synchronize_session=False)
    )
    result = cast(CursorResult[Any], await db.execute(statement))
    return result.rowcount == 1
