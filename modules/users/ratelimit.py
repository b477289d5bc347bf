"""Brute-force protection: failed logins per username and per client address, and requests for
mail (forgot-password, request-verify-token) per email and per address.

Counts live in `limits` storage: in process memory by default, in Redis when REDIS_URL is set
(so every instance sees the same counts). Moving windows: a lock ends LOGIN_FAILURE_WINDOW
seconds after the oldest counted failure.

When the storage fails (Redis down) the limiter fails OPEN: requests go on, every password is
still checked, and a warning is logged (at most once a minute). Locking every user out because
Redis is down would turn a cache outage into a full outage.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from loguru import logger
from redis.asyncio import ConnectionPool

from app.net import limit_key
from modules.users.exceptions import RateLimited

KEY_PREFIX = "gatehouse"
ADDRESS_FACTOR = 4  # a client address may fail this many times more than one username
REDIS_TIMEOUT_SECONDS = 0.5
_WARNING_INTERVAL_SECONDS = 60.0


def _key(value: str) -> str:
    # Case-folded (emails match case-insensitively), hashed: bounded key size, and the
    # storage (Redis) never holds an email address.
    return hashlib.sha256(value.casefold().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Limit:
    scope: str  # "user" or "address", for logs
    namespace: str
    item: RateLimitItem
    identifier: str


class AuthLimiter:
    """The tiny API the manager and the routes use: `check_login`, `login_failed`,
    `login_succeeded`, `hit_mail_request`."""

    def __init__(
        self,
        storage: Storage,
        max_failures: int,
        window_seconds: int,
        pool: ConnectionPool | None = None,
    ) -> None:
        self.storage = storage
        self.limiter = MovingWindowRateLimiter(storage)
        self.per_user = RateLimitItemPerSecond(max_failures, window_seconds)
        self.per_address = RateLimitItemPerSecond(max_failures * ADDRESS_FACTOR, window_seconds)
        self._pool = pool
        self._last_warning = 0.0

    @classmethod
    def open(cls, redis_url: str | None, max_failures: int, window_seconds: int) -> AuthLimiter:
        if not redis_url:
            return cls(MemoryStorage(), max_failures, window_seconds)
        pool = ConnectionPool.from_url(
            redis_url,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
        )
        storage = RedisStorage(
            f"async+{redis_url}",
            implementation="redispy",
            key_prefix=f"{KEY_PREFIX}:limits",
            connection_pool=pool,  # type: ignore[arg-type]  # passed on to redis-py
        )
        return cls(storage, max_failures, window_seconds, pool=pool)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.disconnect()
        if isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            self.storage.timer.cancel()  # its expiry task would outlive the app otherwise

    def _limits(self, namespace: str, name: str, address: str | None) -> list[_Limit]:
        limits = [_Limit("user", namespace, self.per_user, _key(name))]
        if address:
            limits.append(_Limit("address", namespace, self.per_address, limit_key(address)))
        return limits

    # Logins ------------------------------------------------------------------------------

    async def check_login(self, username: str, address: str | None) -> None:
        """Refuse (429 + Retry-After) before any password is checked when the address or the
        username has failed too often.

        The username's attempt is counted here, atomically, before the password is checked:
        concurrent guesses cannot all slip past the check (a success clears the count). The
        address's count only grows on failures, so one office behind one NAT address is not
        locked out by its own successful logins.
        """
        user, *by_address = self._limits("login", username, address)
        await self._check(by_address)
        if await self._hit(user) is False:
            raise RateLimited(retry_after=await self._seconds_until_free(user), scope=user.scope)

    async def login_failed(self, username: str, address: str | None) -> str | None:
        """Count a failure (the username's was counted by check_login); returns the scope
        ("user"/"address") that is now locked, if any."""
        user, *by_address = self._limits("login", username, address)
        for limit in by_address:
            await self._hit(limit)
        for limit in (user, *by_address):
            if not await self._test(limit):
                return limit.scope
        return None

    async def login_succeeded(self, username: str) -> None:
        """A success clears the username's count (not the address's: one good account must
        not reset an attacker's count on others)."""
        limit = self._limits("login", username, None)[0]
        try:
            await self.limiter.clear(limit.item, limit.namespace, limit.scope, limit.identifier)
        except Exception as exc:
            self._storage_failed(exc)

    # Mail requests -----------------------------------------------------------------------

    async def hit_mail_request(self, kind: str, email: str, address: str | None) -> None:
        """Count a forgot-password / verify request, known account or not; 429 past the limit."""
        limits = self._limits(f"mail-{kind}", email, address)
        await self._check(limits)
        for limit in limits:
            await self._hit(limit)

    # Storage access, failing open --------------------------------------------------------

    async def _check(self, limits: list[_Limit]) -> None:
        retry_after = 0
        scope = None
        for limit in limits:
            if await self._test(limit):
                continue
            wait = await self._seconds_until_free(limit)
            if wait > retry_after:
                retry_after, scope = wait, limit.scope
        if scope is not None:
            raise RateLimited(retry_after=retry_after, scope=scope)

    async def _test(self, limit: _Limit) -> bool:
        try:
            return await self.limiter.test(
                limit.item, limit.namespace, limit.scope, limit.identifier
            )
        except Exception as exc:
            self._storage_failed(exc)
            return True

    async def _hit(self, limit: _Limit) -> bool | None:
        """True: counted; False: the limit is full (nothing counted); None: storage down."""
        try:
            return await self.limiter.hit(
                limit.item, limit.namespace, limit.scope, limit.identifier
            )
        except Exception as exc:
            self._storage_failed(exc)
            return None

    async def _seconds_until_free(self, limit: _Limit) -> int:
        try:
            stats = await self.limiter.get_window_stats(
                limit.item, limit.namespace, limit.scope, limit.identifier
            )
        except Exception as exc:
            self._storage_failed(exc)
            return 1
        return max(1, math.ceil(stats.reset_time - time.time()))

    def _storage_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_warning >= _WARNING_INTERVAL_SECONDS:
            self._last_warning = now
            logger.warning(
                "rate limit storage unavailable ({}): failing open, passwords still checked",
                type(exc).__name__,
            )
