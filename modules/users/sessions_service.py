"""Login sessions: start one at login, rotate its refresh token, end one or all of them.

A session's id is the `sid` claim of its access tokens; every access token is checked against
its session on each request, so ending a session ends its access tokens at once.

Refresh-token reuse: presenting a refresh token that was already rotated away ends the whole
session (RFC 9700 §4.14.2), the newest refresh token and the access tokens with it. That holds
also for the loser of two refreshes racing with one token: the server cannot tell a client
racing itself from a thief racing the client, so clients must not refresh in parallel
(single-flight their refresh call).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends
from fastapi_users.db import BaseUserDatabase
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import DbSession
from app.events import SessionRevoked, publish_after_commit
from modules.users import sessions_repository as repository
from modules.users.exceptions import (
    RefreshTokenInvalid,
    RefreshTokenOfInactiveUser,
    RefreshTokenReused,
)
from modules.users.grants import TokenGrants, token_grants
from modules.users.metrics import REFRESH_REUSE, SESSIONS_REVOKED
from modules.users.models import LoginSession, User
from modules.users.runtime import UsersRuntime, get_runtime
from modules.users.settings import UsersSettings
from modules.users.tokens import (
    AccessClaims,
    hash_refresh_token,
    issue_access_token,
    issue_refresh_token,
    read_refresh_token,
)

USER_AGENT_MAX = 512


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: uuid.UUID


class SessionService:
    def __init__(self, db: AsyncSession, runtime: UsersRuntime) -> None:
        self.db = db
        self.runtime = runtime

    async def _grants(self, user_id: uuid.UUID) -> TokenGrants:
        """roles and scope as of now, for services that verify the token offline. Read before
        the session row is written: on SQLite a write takes the database's one write lock,
        and reads after it would hold that lock longer under a refresh flood."""
        return await token_grants(self.db, user_id, self.runtime.permissions)

    def _issue(
        self, login: LoginSession, refresh_token: str, now: datetime, grants: TokenGrants
    ) -> IssuedTokens:
        # An access token never outlives its session.
        expires_at = min(
            now + timedelta(seconds=self.runtime.settings.access_token_ttl),
            as_utc(login.expires_at),
        )
        access = issue_access_token(
            self.runtime.access_keys,
            login.user_id,
            login.id,
            now,
            expires_at,
            roles=grants.roles,
            scope=grants.scope,
        )
        return IssuedTokens(
            access_token=access,
            refresh_token=refresh_token,
            expires_in=max(0, int((expires_at - now).total_seconds())),
            session_id=login.id,
        )

    async def start(
        self, user: User, user_agent: str | None, client_address: str | None
    ) -> IssuedTokens:
        """A new session, with tokens never seen before (ASVS 7.2.4)."""
        now = utcnow()
        session_id = uuid.uuid4()
        refresh_token = issue_refresh_token(self.runtime.secret, session_id, 0)
        login = LoginSession(
            id=session_id,
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=self.runtime.settings.refresh_token_ttl),
            user_agent=user_agent[:USER_AGENT_MAX] if user_agent else None,
            client_address=client_address,
            refresh_token_hash=hash_refresh_token(refresh_token),
            refresh_generation=0,
        )
        grants = await self._grants(user.id)
        await repository.lock_user(self.db, user.id)
        # Housekeeping where it costs least: a login writes anyway. (The scheduled purge,
        # `purge_sessions` below, covers users who never come back.)
        retention = timedelta(seconds=self.runtime.settings.session_retention)
        await repository.purge_ended(self.db, user.id, now - retention)
        repository.add_session(self.db, login)
        await self.db.flush()
        # The cap: past MAX_SESSIONS_PER_USER live sessions, the oldest logins end, so no
        # number of logins grows the table or the session list without bound.
        evicted = await repository.live_beyond(
            self.db, user.id, now, self.runtime.settings.max_sessions_per_user
        )
        await repository.revoke_many(self.db, user.id, evicted, now)
        if evicted:
            SESSIONS_REVOKED.labels("session cap").inc(len(evicted))
        logger.bind(user_id=str(user.id), session_id=str(login.id)).info("login session started")
        for session_id in evicted:
            logger.bind(
                user_id=str(user.id), session_id=str(session_id), reason="session cap"
            ).info("login session revoked")
            ended = SessionRevoked(user_id=user.id, session_id=session_id, reason="session cap")
            publish_after_commit(self.db, ended)
        return self._issue(login, refresh_token, now, grants)

    async def refresh(self, refresh_token: str) -> IssuedTokens:
        """One conditional UPDATE of the session row, nothing else written (but for the first
        rotation of a session from before generation tokens): a refresh flood neither grows
        the tables nor holds SQLite's write lock for more than that statement and the commit.
        Everything that only reads is done before it."""
        now = utcnow()
        presented_hash = hash_refresh_token(refresh_token)
        claims = read_refresh_token(self.runtime.secret, refresh_token)
        if claims is None:
            # Not of the current format: an old-format token still current is found by hash.
            state = await repository.refresh_state_by_hash(self.db, presented_hash)
            if state is None:
                await self._reuse_of_old_format(presented_hash, now)
                raise RefreshTokenInvalid
        else:
            state = await repository.refresh_state(self.db, claims.session_id)
            if state is None:  # its session was deleted (ended, then purged)
                raise RefreshTokenInvalid
            if claims.generation < state.generation:
                await self._reused(state.session_id, state.user_id, now)
            if claims.generation > state.generation:
                raise RefreshTokenInvalid  # cannot happen without the secret
        if not state.user_active:
            await self.end(state.session_id, state.user_id, reason="inactive")
            raise RefreshTokenOfInactiveUser
        grants = await self._grants(state.user_id)
        new_token = issue_refresh_token(self.runtime.secret, state.session_id, state.generation + 1)
        login = await repository.rotate(
            self.db,
            state.session_id,
            state.generation,
            presented_hash,
            hash_refresh_token(new_token),
            now,
        )
        if login is None:
            # Lost a race for this token (that is reuse), or the session ended meanwhile. The
            # UPDATE matched nothing, so nothing is undone; this read sees the winner's write
            # (PostgreSQL read committed; SQLite: this transaction holds the write lock).
            current = await repository.generation_of(self.db, state.session_id)
            if current is not None and current > state.generation:
                await self._reused(state.session_id, state.user_id, now)
            raise RefreshTokenInvalid
        if claims is None:
            # Keeps reuse detection for the old-format token just rotated away.
            repository.record_rotated(self.db, presented_hash, login.id, now)
        await self.db.flush()
        logger.bind(user_id=str(login.user_id), session_id=str(login.id)).info(
            "refresh token rotated"
        )
        return self._issue(login, new_token, now, grants)

    async def _reuse_of_old_format(self, token_hash: str, now: datetime) -> None:
        """An old-format token rotated away before: its row marks reuse (raises if so)."""
        owner = await repository.rotated_owner(self.db, token_hash)
        if owner is not None:
            await self._reused(*owner, now)

    async def _reused(self, session_id: uuid.UUID, user_id: uuid.UUID, now: datetime) -> None:
        ended = await repository.revoke(self.db, session_id, user_id, now)
        REFRESH_REUSE.inc()
        logger.bind(user_id=str(user_id), session_id=str(session_id), session_ended=ended).warning(
            "refresh token reuse detected: session revoked"
        )
        if ended:
            SESSIONS_REVOKED.labels("reuse").inc()
            publish_after_commit(
                self.db, SessionRevoked(user_id=user_id, session_id=session_id, reason="reuse")
            )
        # CommitsBeforeRaising: the request's unit of work keeps the revocation, then answers.
        raise RefreshTokenReused

    async def is_live(self, claims: AccessClaims) -> bool:
        return await repository.is_live(self.db, claims.session_id, claims.user_id, utcnow())

    async def live_user(self, claims: AccessClaims) -> User | None:
        """The user of the token's session if that session is live: from the auth cache when
        nothing changed since it was read (modules/users/auth_cache.py), else in one read."""
        cache = self.runtime.auth_cache
        tag = None
        if cache is not None:
            # Read before the database is: a change committed meanwhile outdates this tag.
            tag = await cache.tag(claims.user_id)
            if tag is not None:
                cached = cache.user(self.db, claims.session_id, claims.user_id, tag)
                if cached is not None:
                    return cached
        found = await repository.live_session_user(
            self.db, claims.session_id, claims.user_id, utcnow()
        )
        if found is None:
            return None
        user, expires_at = found
        if cache is not None and tag is not None:
            cache.store(claims.session_id, user, as_utc(expires_at), tag)
        return user

    async def list_live(
        self, user_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None = None
    ) -> list[LoginSession]:
        return await repository.list_live(self.db, user_id, utcnow(), limit, after)

    async def end(self, session_id: uuid.UUID, user_id: uuid.UUID, reason: str) -> bool:
        ended = await repository.revoke(self.db, session_id, user_id, utcnow())
        if ended:
            SESSIONS_REVOKED.labels(reason).inc()
            logger.bind(user_id=str(user_id), session_id=str(session_id), reason=reason).info(
                "login session revoked"
            )
            publish_after_commit(
                self.db, SessionRevoked(user_id=user_id, session_id=session_id, reason=reason)
            )
        return ended

    async def end_all(self, user_id: uuid.UUID, reason: str, keep: uuid.UUID | None = None) -> int:
        """End every live session of the user but `keep` (when given)."""
        count = await repository.revoke_all(self.db, user_id, utcnow(), keep)
        logger.bind(user_id=str(user_id), sessions=count, reason=reason).info(
            "all login sessions revoked"
        )
        if count:
            SESSIONS_REVOKED.labels(reason).inc(count)
            # session_id None: every session of the user (but `keep`).
            publish_after_commit(
                self.db, SessionRevoked(user_id=user_id, session_id=None, reason=reason)
            )
        return count


async def purge_sessions(
    db: AsyncSession, settings: UsersSettings, now: datetime, limit: int
) -> int:
    """One batch of the scheduled purge (`app/purge.py`): sessions that ended more than
    SESSION_RETENTION ago, with their rotated refresh tokens."""
    cutoff = now - timedelta(seconds=settings.session_retention)
    return await repository.purge_ended_batch(db, cutoff, limit)


def as_utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they are stored in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def end_all_sessions_of(
    user_db: BaseUserDatabase[User, uuid.UUID],
    runtime: UsersRuntime,
    user: User,
    reason: str,
    keep: uuid.UUID | None = None,
) -> None:
    """For the user manager's hooks (password change or reset, deactivation)."""
    if isinstance(user_db, SQLAlchemyUserDatabase):
        await SessionService(user_db.session, runtime).end_all(user.id, reason, keep)


async def get_session_service(
    db: DbSession, runtime: Annotated[UsersRuntime, Depends(get_runtime)]
) -> SessionService:
    return SessionService(db, runtime)


SessionServiceDep = Annotated[SessionService, Depends(get_session_service)]
