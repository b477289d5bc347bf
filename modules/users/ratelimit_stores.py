"""Where rate-limit counts live: moving windows (the `limits` library) and in-flight counters,
in process memory or in Redis. `ratelimit.py` decides; these only count.

Every operation is a coroutine on a `LimitStore`; the Redis one is always called through the
`redis` circuit of the integrations module (`call_redis`), never directly.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool, Redis

KEY_PREFIX = "gatehouse"
# An in-flight reservation outlives any login; this only bounds what a process that died
# mid-login leaves behind in Redis (the counter expires this long after its last use).
IN_FLIGHT_TTL_SECONDS = 60

# DECR that never leaves a key below zero, nor one without a TTL.
_RELEASE = """
local left = redis.call('DECR', KEYS[1])
if left <= 0 then redis.call('DEL', KEYS[1]) end
return left
"""


class SafeMemoryStorage(MemoryStorage):
    """limits 5.8.0's MemoryStorage with a `clear()` that cannot crash its expiry task.

    The expiry task walks a snapshot of the keys and awaits a thread for each; the original
    `clear()` pops a key meanwhile, the task then reads `events[key]`: KeyError, logged by
    asyncio as "Task exception was never retrieved" (about one login in five). Here `clear()`
    empties the key's entries instead; the expiry task drops empty keys itself.
    """

    async def clear(self, key: str) -> None:
        self.storage.pop(key, None)
        self.expirations.pop(key, None)
        if key in self.events:
            self.events[key] = []


class LimitStore:
    """Moving windows plus in-flight counters on one storage."""

    name: str

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.windows = MovingWindowRateLimiter(storage)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one entry; False (nothing counted) when the window is full."""
        return await self.windows.hit(item, *identifiers)

    async def count(self, item: RateLimitItem, *identifiers: str) -> tuple[int, int]:
        """(entries in the window, seconds until one leaves it)."""
        stats = await self.windows.get_window_stats(item, *identifiers)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        return item.amount - stats.remaining, wait

    async def clear(self, item: RateLimitItem, *identifiers: str) -> None:
        await self.windows.clear(item, *identifiers)

    async def reserve(self, key: str) -> int:
        """One more in flight; the number now in flight (this one included)."""
        raise NotImplementedError

    async def release(self, key: str) -> None:
        raise NotImplementedError

    async def ping(self) -> None:
        """Raises when the store cannot be reached."""

    async def close(self) -> None:
        """Free what the store holds."""


class MemoryLimitStore(LimitStore):
    name = "memory"

    def __init__(self) -> None:
        super().__init__(SafeMemoryStorage())
        self._in_flight: dict[str, int] = {}

    async def reserve(self, key: str) -> int:
        # No await between read and write: atomic on the event loop.
        self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return self._in_flight[key]

    async def release(self, key: str) -> None:
        left = self._in_flight.get(key, 0) - 1
        if left > 0:
            self._in_flight[key] = left
        else:
            self._in_flight.pop(key, None)

    async def close(self) -> None:
        storage = self.storage
        assert isinstance(storage, MemoryStorage)
        if storage.timer is not None:
            storage.timer.cancel()  # its expiry task would outlive the app otherwise


class RedisLimitStore(LimitStore):
    """Shared by every instance. Timeouts are enforced by the caller (`call_redis`); the
    socket timeouts here are only a backstop."""

    name = "redis"

    def __init__(self, redis_url: str, socket_timeout: float = 1.0) -> None:
        self.pool = ConnectionPool.from_url(
            redis_url,
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
        )
        super().__init__(
            RedisStorage(
                f"async+{redis_url}",
                implementation="redispy",
                key_prefix=f"{KEY_PREFIX}:limits",
                connection_pool=self.pool,  # type: ignore[arg-type]  # passed on to redis-py
            )
        )
        self.redis = Redis(connection_pool=self.pool)
        self._release = self.redis.register_script(_RELEASE)

    @staticmethod
    def _in_flight_key(key: str) -> str:
        return f"{KEY_PREFIX}:in-flight:{key}"

    async def reserve(self, key: str) -> int:
        name = self._in_flight_key(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, IN_FLIGHT_TTL_SECONDS)
            now_in_flight, _ = await pipe.execute()
        return int(now_in_flight)

    async def release(self, key: str) -> None:
        await self._release(keys=[self._in_flight_key(key)])

    async def ping(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.disconnect()
