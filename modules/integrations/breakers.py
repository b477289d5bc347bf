"""Circuit breakers: one purgatory factory per app, one named circuit per upstream.

purgatory (3.0.1) does the counting and the state machine; this file closes its gaps:
- its open-circuit exception (`OpenedState`) is not exported: callers get `CircuitOpenError`;
- its half-open state lets every concurrent call through: here ONE trial call runs per
  process, the others fail fast as if the circuit were still open;
- its Redis unit of work never closes its connection: `Breakers.close()` does;
- its listeners are sync hooks: ours writes every state change and failure to the log.

Shared state (REDIS_URL set): purgatory keeps each circuit in Redis (`state`, `opened_at`,
`failure_count`), read at the start of every call, so every instance sees a circuit another
opened. Limits, by design of purgatory's store: the half-open transition is written only when
the trial ends, so during a trial each instance may send its own single trial (at most one per
instance, not one per cluster); failure counts are read-then-incremented, so two instances
failing at once may open the circuit one failure late or early; threshold and ttl are stored
when a circuit is first created in Redis (change them by deleting the key). When Redis is
unreachable the breakers fall back to this process's own state (logged) rather than failing
the call or calling unprotected.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from loguru import logger
from purgatory import AsyncCircuitBreakerFactory, AsyncRedisUnitOfWork
from purgatory.domain.model import OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from purgatory.service._async.repository import AsyncRedisRepository
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from modules.integrations.exceptions import CircuitOpenError, UpstreamRefusedError

T = TypeVar("T")

# Redis keys of the circuits: `gatehouse:circuit:<name>` (and `…::failure_count`).
REDIS_KEY_PREFIX = "gatehouse:circuit:"
# A breaker must not hang on its own store: a slow Redis falls back to local state instead.
REDIS_TIMEOUT_SECONDS = 1.0

StateName = Literal["closed", "open", "half_open"]
# purgatory's names → ours (as shown in logs and /health/ready).
_STATES: dict[str, StateName] = {"closed": "closed", "opened": "open", "half-opened": "half_open"}
_STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class CircuitState:
    state: StateName
    failures: int
    opened_at: str | None  # ISO 8601, UTC

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "failures": self.failures, "opened_at": self.opened_at}


class Breakers:
    """Owns the app's purgatory factory (in memory, or shared through Redis) and its circuits."""

    def __init__(
        self,
        threshold: int,
        ttl: float,
        redis_url: str | None = None,
        key_prefix: str = REDIS_KEY_PREFIX,
    ) -> None:
        if threshold < 1 or ttl <= 0:
            # purgatory would silently turn 0 into its default (`threshold or default`).
            raise ValueError("breaker threshold must be >= 1 and ttl > 0")
        self.threshold = threshold
        self.ttl = ttl
        self.redis: aioredis.Redis | None = None
        self._purgatory_redis: aioredis.Redis | None = None
        if redis_url:
            uow = AsyncRedisUnitOfWork(redis_url)
            repository = uow.contexts
            assert isinstance(repository, AsyncRedisRepository)
            # Swap purgatory's client for one with timeouts and a name we can see in
            # CLIENT LIST; keep the original to close it too (it never connects).
            self._purgatory_redis = repository.redis
            self.redis = aioredis.from_url(
                redis_url,
                socket_timeout=REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                client_name=f"gatehouse-breakers-{os.getpid()}",
            )
            repository.redis = self.redis
            repository.prefix = key_prefix
            self.shared: AsyncCircuitBreakerFactory = AsyncCircuitBreakerFactory(
                default_threshold=threshold, default_ttl=ttl, uow=uow
            )
        else:
            self.shared = AsyncCircuitBreakerFactory(default_threshold=threshold, default_ttl=ttl)
        # Used only while the shared store is unreachable.
        self.local = AsyncCircuitBreakerFactory(default_threshold=threshold, default_ttl=ttl)
        self.shared.add_listener(self._log_event)
        self.local.add_listener(self._log_event)
        self.circuits: dict[str, Circuit] = {}
        self._last_state: dict[str, StateName] = {}
        # purgatory forgets the count when a circuit opens (in memory); health shows it.
        self.failures_seen: dict[str, int] = {}
        self._store_down = False

    def circuit(self, name: str) -> Circuit:
        """The circuit of one upstream, created on first use."""
        if name not in self.circuits:
            self.circuits[name] = Circuit(name, self)
        return self.circuits[name]

    async def start(self) -> None:
        """Connect the store and create every known circuit, so readiness lists them."""
        try:
            await self.shared.initialize()
        except _STORE_ERRORS as exc:
            self._note_store_down(exc)
        for circuit in self.circuits.values():
            await self.get_breaker(circuit.name)

    async def close(self) -> None:
        for client in (self.redis, self._purgatory_redis):
            if client is not None:
                await client.aclose()

    async def snapshot(self) -> dict[str, CircuitState]:
        return {name: await circuit.state() for name, circuit in self.circuits.items()}

    async def get_breaker(self, name: str) -> AsyncCircuitBreaker:
        if self.redis is not None:
            try:
                breaker = await self.shared.get_breaker(name)
            except _STORE_ERRORS as exc:
                self._note_store_down(exc)
            else:
                if self._store_down:
                    self._store_down = False
                    logger.info("circuit state store reachable again: shared state in use")
                return breaker
            return await self.local.get_breaker(name)
        return await self.shared.get_breaker(name)

    def _note_store_down(self, exc: BaseException) -> None:
        if not self._store_down:
            self._store_down = True
            logger.warning(
                "circuit state store unreachable ({}): each process keeps its own state",
                type(exc).__name__,
            )

    def _log_event(self, name: str, kind: str, event: Any) -> None:
        """purgatory's hook (sync): every state change and failure, with the circuit's name."""
        log = logger.bind(circuit=name)
        if kind == "state_changed":
            new = _STATES.get(event.state, "closed")
            old = self._last_state.get(name, "closed")
            self._last_state[name] = new
            if old == "half_open" and new == "open":
                self.failures_seen[name] = self.failures_seen.get(name, 0) + 1
            level = "INFO" if new == "closed" else "WARNING"
            log.bind(state=new, previous_state=old).log(
                level, "circuit {} changed state: {} -> {}", name, old, new
            )
        elif kind == "failed":
            self.failures_seen[name] = event.failure_count
            log.bind(failures=event.failure_count).warning(
                "circuit {} recorded a failure ({} of {})",
                name,
                event.failure_count,
                self.threshold,
            )
        elif kind == "recovered":
            self.failures_seen[name] = 0
            log.info("circuit {} recovered: failure count reset", name)
        elif kind == "circuit_breaker_created":
            self._last_state.setdefault(name, "closed")
            log.debug(
                "circuit {} created (threshold {}, open for {} s)", name, event.threshold, event.ttl
            )


class Circuit:
    """One upstream's circuit. `call()` runs an operation behind it.

    Any exception from the operation counts as a failure, except `UpstreamRefusedError` (the
    upstream answered: it works). A successful return counts as a success.
    """

    def __init__(self, name: str, breakers: Breakers) -> None:
        self.name = name
        self._breakers = breakers
        # The half-open gate: purgatory would let every concurrent call through.
        self._trial_running = False

    async def state(self) -> CircuitState:
        context = (await self._breakers.get_breaker(self.name)).context
        opened_at = context.opened_at if context.state == "opened" else None
        failures = int(context.failure_count or 0)
        if context.state != "closed":
            failures = max(failures, self._breakers.failures_seen.get(self.name, 0))
        return CircuitState(
            state=_STATES.get(context.state, "closed"),
            failures=failures,
            opened_at=None
            if opened_at is None
            else datetime.fromtimestamp(opened_at, UTC).isoformat(timespec="milliseconds"),
        )

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        breaker = await self._breakers.get_breaker(self.name)
        context = breaker.context
        trial = context.state != "closed"
        if trial:
            retry_after = self._retry_after(context.opened_at, context.ttl)
            if context.state == "opened" and retry_after > 0:
                raise CircuitOpenError(self.name, retry_after)
            if self._trial_running:
                # Another call is the trial: fail fast, as if still open.
                raise CircuitOpenError(self.name, 0.0)
            self._trial_running = True
        try:
            return await self._run(breaker, operation, trial)
        finally:
            if trial:
                self._trial_running = False

    async def _run(
        self, breaker: AsyncCircuitBreaker, operation: Callable[[], Awaitable[T]], trial: bool
    ) -> T:
        try:
            await breaker.__aenter__()
        except OpenedState:
            raise CircuitOpenError(self.name, breaker.context.ttl) from None
        try:
            result = await operation()
        except UpstreamRefusedError:
            await self._record(breaker, None)
            raise
        except asyncio.CancelledError as exc:
            # A cancelled call says nothing about the upstream; a cancelled trial re-opens
            # the circuit (it must not stay half-open with no trial running).
            if trial:
                await self._record(breaker, exc)
            raise
        except BaseException as exc:
            await self._record(breaker, exc)
            raise
        await self._record(breaker, None)
        return result

    async def _record(self, breaker: AsyncCircuitBreaker, exc: BaseException | None) -> None:
        try:
            if exc is None:
                await breaker.__aexit__(None, None, None)
            else:
                await breaker.__aexit__(type(exc), exc, exc.__traceback__)
        except _STORE_ERRORS as store_exc:
            self._breakers._note_store_down(store_exc)

    @staticmethod
    def _retry_after(opened_at: float | None, ttl: float) -> float:
        if opened_at is None:
            return 0.0
        return max(0.0, opened_at + ttl - time.time())
