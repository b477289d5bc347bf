"""Authenticated requests without a database read, with revocation still immediate.

An access token names its user and login session; checking that the session is live and the
user active is a database read on every request. The cache keeps, per login session, the user
as it was read, tagged with the user's *generation* at the moment the read began. Anything that
changes what authentication sees (a session ended: logout, logout-all, password change or
reset, deactivation, the session cap, refresh-token reuse; the user row changed or deleted:
flags, email, password hash, later roles) moves the user's generation on, and a cached entry is
used only while its tag is still the user's current generation.

The generation moves twice, before the transaction commits and again after, both before the
response is sent (the unit of work, app/database.py, commits before the answer): a request that
read the database while the change was not yet committed tagged its entry with the generation
between the two moves, so the second move outdates it. A request that starts after the changing
request returned therefore sees the new generation and reads the database.

Where the generation lives (AUTH_CACHE, `modules/users/settings.py`):
- `redis` (AUTH_CACHE=auto with REDIS_URL): in Redis, a random value per user, read once per
  request (one GET): every process sees a change as soon as it is made. If Redis does not
  answer, the request reads the database (never a cached answer) and the process drops its
  entries. A move that fails before the commit fails the change (nothing is committed).
- `local` (AUTH_CACHE=auto in a process that knows it is the only one serving: `python -m app
  serve` with one worker): in this process's memory.
- `off` (AUTH_CACHE=auto with several workers and no Redis, or behind any server that does not
  say how many processes serve, e.g. bare `uvicorn --workers`): every request reads the
  database: another process's logout could not reach this one's memory.

Changes made outside the running app's requests (a SQL shell, another program writing the
same database) do not move a generation: cached entries live AUTH_CACHE_TTL seconds at most.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import chain
from typing import Any, Literal

from fastapi import FastAPI
from loguru import logger
from redis.asyncio import Redis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, make_transient_to_detached

from app.database import Database
from app.serving import serve_workers
from modules.integrations import IntegrationError, call_redis
from modules.users.exceptions import AuthStateUnavailable
from modules.users.models import User

# session.info: the users whose authentication changed in this transaction.
CHANGED = "gatehouse.users.auth_changed"
KEY_PREFIX = "gatehouse:auth-generation"
# A Redis generation outlives any cached entry by far; when it expires, the next request
# draws a new one, which no entry carries.
KEY_TTL_SECONDS = 86_400
MAX_ENTRIES = 50_000
MAX_LOCAL_GENERATIONS = 200_000

Mode = Literal["off", "local", "redis"]


def note_changed(session: AsyncSession | Session, user_id: uuid.UUID) -> None:
    """The user's sessions or account changed in this transaction: outdate cached entries."""
    changed: set[uuid.UUID] = session.info.setdefault(CHANGED, set())
    changed.add(user_id)


@event.listens_for(Session, "before_flush")
def _users_in_flush(session: Session, _context: Any, _instances: Any) -> None:
    # Any write to a user row (flags, email, password hash, deletion) changes what
    # authentication sees; a row merely marked dirty costs one needless move, nothing more.
    for instance in chain(session.dirty, session.deleted):
        if isinstance(instance, User) and instance.id is not None:
            note_changed(session, instance.id)


def resolve_mode(setting: str, redis_url: str | None) -> Mode:
    if setting == "off":
        return "off"
    if setting in ("local", "redis"):
        return setting  # type: ignore[return-value]
    if redis_url:
        return "redis"
    return "local" if serve_workers() == 1 else "off"


class LocalGenerations:
    """Generations in this process's memory (one process serves: every change is made here)."""

    def __init__(self) -> None:
        self._generations: dict[uuid.UUID, int] = {}
        self._epoch = 0

    async def current(self, user_id: uuid.UUID) -> object | None:
        return (self._epoch, self._generations.get(user_id, 0))

    async def establish(self, user_id: uuid.UUID) -> object | None:
        return await self.current(user_id)

    async def move(self, user_ids: Iterable[uuid.UUID], *, committed: bool) -> None:
        generations = self._generations
        if len(generations) > MAX_LOCAL_GENERATIONS:
            # Forget them all at once: the epoch outdates every entry tagged before.
            generations.clear()
            self._epoch += 1
        for user_id in user_ids:
            generations[user_id] = generations.get(user_id, 0) + 1

    async def close(self) -> None:
        return None


class RedisGenerations:
    """Generations in Redis, shared by every process: a random value per user."""

    def __init__(self, redis_url: str, app: FastAPI | None) -> None:
        self.redis = Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.app = app  # the integrations module's `redis` circuit (call_redis)

    @staticmethod
    def _key(user_id: uuid.UUID) -> str:
        return f"{KEY_PREFIX}:{user_id.hex}"

    async def current(self, user_id: uuid.UUID) -> object | None:
        """The user's generation; None when there is none yet or Redis does not answer."""
        key = self._key(user_id)
        try:
            value: bytes | str | None = await call_redis(self.app, lambda: self.redis.get(key))
        except IntegrationError:
            return None
        return value

    async def establish(self, user_id: uuid.UUID) -> object | None:
        """The user's generation, drawn now if there is none (NX: a concurrent draw wins)."""
        key = self._key(user_id)
        drawn = secrets.token_hex(16).encode()
        try:
            created = await call_redis(
                self.app, lambda: self.redis.set(key, drawn, ex=KEY_TTL_SECONDS, nx=True)
            )
            if created:
                return drawn
            value: bytes | str | None = await call_redis(self.app, lambda: self.redis.get(key))
        except IntegrationError:
            return None
        return value

    async def move(self, user_ids: Iterable[uuid.UUID], *, committed: bool) -> None:
        """A new random value for each user. Raises IntegrationError if Redis does not take it."""
        mapping = {self._key(user_id): secrets.token_hex(16) for user_id in user_ids}

        async def write() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in mapping.items():
                    pipe.set(key, value, ex=KEY_TTL_SECONDS)
                await pipe.execute()

        await call_redis(self.app, write)

    async def close(self) -> None:
        await self.redis.aclose()


@dataclass(frozen=True)
class _Entry:
    tag: object
    user_id: uuid.UUID
    template: User  # detached, never attached to a session nor changed
    session_expires_at: float  # epoch seconds
    stored_at: float  # monotonic


class AuthCache:
    """Per login session: the user, tagged with the generation its read began with."""

    def __init__(
        self, mode: Literal["local", "redis"], generations: Any, ttl: float, database: Database
    ) -> None:
        self.mode = mode
        self.generations: LocalGenerations | RedisGenerations = generations
        self.ttl = ttl
        self._entries: dict[uuid.UUID, _Entry] = {}
        # The unit of work calls before_commit/after_commit (app/database.py).
        database.commit_listeners.append(self)

    @classmethod
    def open(
        cls,
        setting: str,
        redis_url: str | None,
        ttl: float,
        database: Database | None,
        app: FastAPI | None,
    ) -> AuthCache | None:
        mode = resolve_mode(setting, redis_url)
        if mode == "off" or database is None:
            return None
        if mode == "redis":
            if not redis_url:
                raise ValueError("AUTH_CACHE=redis needs REDIS_URL")
            return cls("redis", RedisGenerations(redis_url, app), ttl, database)
        return cls("local", LocalGenerations(), ttl, database)

    async def close(self, database: Database | None) -> None:
        if database is not None and self in database.commit_listeners:
            database.commit_listeners.remove(self)
        await self.generations.close()

    async def tag(self, user_id: uuid.UUID) -> object | None:
        """Read before the database is: what a new entry is tagged with. None: no caching."""
        tag = await self.generations.current(user_id)
        if tag is None and self.mode == "redis":
            # Absent (first use, or expired) or Redis not answering; if not answering,
            # what this process holds may be outdated without its knowing.
            tag = await self.generations.establish(user_id)
            if tag is None:
                self._entries.clear()
        return tag

    def user(
        self, db: AsyncSession, session_id: uuid.UUID, user_id: uuid.UUID, tag: object
    ) -> User | None:
        """The cached user, attached to this request's session (no SQL), or None."""
        entry = self._entries.get(session_id)
        if (
            entry is None
            or entry.tag != tag
            or entry.user_id != user_id
            or entry.session_expires_at <= time.time()
            or time.monotonic() - entry.stored_at > self.ttl
        ):
            return None
        # As if read in this request: routes may change it (PATCH /users/me) or delete it.
        merged: User = db.sync_session.merge(entry.template, load=False)
        return merged

    def store(self, session_id: uuid.UUID, user: User, expires_at: datetime, tag: object) -> None:
        entries = self._entries
        if len(entries) >= MAX_ENTRIES:
            del entries[next(iter(entries))]  # the oldest stored
        entries[session_id] = _Entry(
            tag=tag,
            user_id=user.id,
            template=_detached_copy(user),
            session_expires_at=expires_at.timestamp(),
            stored_at=time.monotonic(),
        )

    # The unit of work's commit listener ----------------------------------------------------

    async def before_commit(self, session: AsyncSession) -> None:
        changed = session.info.get(CHANGED)
        if changed:
            try:
                await self.generations.move(changed, committed=False)
            except IntegrationError:
                # The transaction is rolled back: nothing changed, nothing is stale.
                logger.warning("auth cache: Redis did not take a generation move; change refused")
                raise AuthStateUnavailable from None

    async def after_commit(self, session: AsyncSession) -> None:
        changed = session.info.pop(CHANGED, None)
        if not changed:
            return
        for entry_key in [k for k, e in self._entries.items() if e.user_id in changed]:
            self._entries.pop(entry_key, None)
        try:
            await self.generations.move(changed, committed=True)
        except IntegrationError as exc:
            # Committed already; the move before the commit outdated every entry made before
            # it, and this process's own entries are gone. Only a read racing the commit in
            # another process could have tagged a stale entry with the new generation.
            self._entries.clear()
            logger.error("auth cache: generation move after commit failed ({})", type(exc).__name__)

    def discard(self, session: AsyncSession) -> None:
        session.info.pop(CHANGED, None)


def _detached_copy(user: User) -> User:
    """A clean, detached User with the same column values (merge(load=False) wants one)."""
    values = {attr.key: getattr(user, attr.key) for attr in User.__mapper__.column_attrs}
    copy = User(**values)
    make_transient_to_detached(copy)
    return copy
