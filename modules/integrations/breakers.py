"""Circuit breakers: one purgatory factory per app, one named circuit per upstream.

purgatory (3.0.1) does the counting and the state machine; this file and `circuit.py` close
its gaps:
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
in Redis too: each instance writes its own at start-up (the last one started wins). When Redis is
unreachable the breakers fall back to this process's own state (logged) rather than failing
the call or calling unprotected.
"""

from __future__ import annotations

import os
from typing import Any

from loguru import logger
from purgatory import AsyncCircuitBreakerFactory, AsyncRedisUnitOfWork
from purgatory.domain.model import Context
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from purgatory.service._async.repository import AsyncRedisRepository
from redis import asyncio as aioredis

from modules.integrations.circuit import STATES, STORE_ERRORS, Circuit, CircuitState, StateName
from modules.integrations.metrics import CIRCUIT_CHANGES, CIRCUIT_STATE, STATE_VALUES

# Redis keys of the circuits: `gatehouse:circuit:<name>` (and `…::failure_count`).
REDIS_KEY_PREFIX = "gatehouse:circuit:"
# A breaker must not hang on its own store: a slow Redis falls back to local state instead.
REDIS_TIMEOUT_SECONDS = 1.0


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
        self._repository: AsyncRedisRepository | None = None
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
            self._repository = repository
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
        self._local_only: set[str] = set()

    def circuit(self, name: str) -> Circuit:
        """The circuit of one upstream, created on first use."""
        if name not in self.circuits:
            self.circuits[name] = Circuit(name, self)
        return self.circuits[name]

    def local_circuit(self, name: str) -> Circuit:
        """A circuit whose state stays in this process even with REDIS_URL: the one that
        guards Redis itself (reading its state from a black-holed Redis would cost the very
        timeout it is there to avoid)."""
        self._local_only.add(name)
        return self.circuit(name)

    async def start(self) -> None:
        """Connect the store and create every known circuit, so readiness lists them."""
        try:
            await self.shared.initialize()
        except STORE_ERRORS as exc:
            self.note_store_down(exc)
        for circuit in self.circuits.values():
            breaker = await self.get_breaker(circuit.name)
            await self._retune(breaker.context)

    async def _retune(self, context: Context) -> None:
        """purgatory keeps the threshold and ttl a circuit was first created with in Redis:
        write this instance's settings (the state and count stay), so a change takes effect."""
        if self._repository is None or self._store_down:
            return
        if (context.threshold, context.ttl) == (self.threshold, self.ttl):
            return
        context.threshold, context.ttl = self.threshold, self.ttl
        try:
            await self._repository.register(context)
        except STORE_ERRORS as exc:
            self.note_store_down(exc)
            return
        logger.bind(circuit=context.name).info(
            "circuit {} retuned in the shared store: threshold {}, open for {} s",
            context.name,
            self.threshold,
            self.ttl,
        )

    async def close(self) -> None:
        for client in (self.redis, self._purgatory_redis):
            if client is not None:
                await client.aclose()

    async def snapshot(self) -> dict[str, CircuitState]:
        return {name: await circuit.state() for name, circuit in self.circuits.items()}

    async def get_breaker(self, name: str) -> AsyncCircuitBreaker:
        if self.redis is not None and name in self._local_only:
            return await self.local.get_breaker(name)
        if self.redis is not None:
            try:
                breaker = await self.shared.get_breaker(name)
            except STORE_ERRORS as exc:
                self.note_store_down(exc)
            else:
                if self._store_down:
                    self._store_down = False
                    logger.info("circuit state store reachable again: shared state in use")
                return breaker
            return await self.local.get_breaker(name)
        return await self.shared.get_breaker(name)

    def note_store_down(self, exc: BaseException) -> None:
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
            new = STATES.get(event.state, "closed")
            old = self._last_state.get(name, "closed")
            self._last_state[name] = new
            if old == "half_open" and new == "open":
                self.failures_seen[name] = self.failures_seen.get(name, 0) + 1
            CIRCUIT_STATE.labels(name).set(STATE_VALUES[new])
            CIRCUIT_CHANGES.labels(name, new).inc()
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
            CIRCUIT_STATE.labels(name).set(STATE_VALUES[self._last_state[name]])
            log.debug(
                "circuit {} created (threshold {}, open for {} s)", name, event.threshold, event.ttl
            )
