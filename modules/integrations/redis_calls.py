"""Calls to Redis from other modules (the users module's rate limits): one `redis` circuit and a
short timeout around each call, so an unreachable or black-holed Redis costs at most
REDIS_TIMEOUT per call until the circuit opens, and nothing while it is open.

The circuit's own state is kept in this process (see `Breakers.local_circuit`): a circuit that
guards Redis cannot be stored in Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from modules.integrations.circuit import Circuit
from modules.integrations.exceptions import UpstreamError, UpstreamTimeoutError

T = TypeVar("T")

CIRCUIT = "redis"


class RedisCalls:
    def __init__(self, circuit: Circuit, timeout: float) -> None:
        self.circuit = circuit
        self.timeout = timeout

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run `operation` (one or a few Redis round trips) behind the circuit.

        Raises `CircuitOpenError` (nothing sent), `UpstreamTimeoutError` or `UpstreamError`
        (a failure of Redis, counted by the circuit). Other exceptions are bugs and pass."""

        async def timed() -> T:
            try:
                return await asyncio.wait_for(operation(), self.timeout)
            except TimeoutError:
                raise UpstreamTimeoutError(CIRCUIT, f"no answer in {self.timeout} s") from None
            except (RedisError, OSError) as exc:
                raise UpstreamError(CIRCUIT, type(exc).__name__) from None

        return await self.circuit.call(timed)
