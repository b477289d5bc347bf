"""One upstream's circuit: purgatory's state machine, with a one-trial half-open gate and our
errors at its surface. Created by `Breakers.circuit(name)` (see `breakers.py`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, TypeVar

from purgatory.domain.model import OpenedState
from purgatory.service._async.circuitbreaker import AsyncCircuitBreaker
from redis.exceptions import RedisError

from modules.integrations.exceptions import CircuitOpenError, UpstreamRefusedError
from modules.integrations.metrics import CALL_DURATION

if TYPE_CHECKING:
    from modules.integrations.breakers import Breakers

T = TypeVar("T")

# Failures of the shared state store (Redis), as opposed to failures of the upstream.
STORE_ERRORS = (RedisError, OSError, asyncio.TimeoutError)

StateName = Literal["closed", "open", "half_open"]
# purgatory's names → ours (as shown in logs and /health/ready).
STATES: dict[str, StateName] = {"closed": "closed", "opened": "open", "half-opened": "half_open"}


@dataclass(frozen=True)
class CircuitState:
    state: StateName
    failures: int
    opened_at: str | None  # ISO 8601, UTC


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
            state=STATES.get(context.state, "closed"),
            failures=failures,
            opened_at=None
            if opened_at is None
            else datetime.fromtimestamp(opened_at, UTC).isoformat(timespec="milliseconds"),
        )

    async def open_for(self) -> float:
        """Seconds until this circuit lets a call through (0 when closed or a trial is due):
        lets a caller skip costly preparation (rendering a mail) that would be thrown away."""
        context = (await self._breakers.get_breaker(self.name)).context
        if context.state != "opened":
            return 0.0
        return self._retry_after(context.opened_at, context.ttl)

    async def call(self, operation: Callable[[], Awaitable[T]]) -> T:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = await self._call(operation)
        except CircuitOpenError:
            outcome = "rejected"
            raise
        except UpstreamRefusedError:
            outcome = "refused"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        else:
            outcome = "ok"
            return result
        finally:
            CALL_DURATION.labels(self.name, outcome).observe(time.perf_counter() - started)

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T:
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
        except STORE_ERRORS as store_exc:
            self._breakers.note_store_down(store_exc)

    @staticmethod
    def _retry_after(opened_at: float | None, ttl: float) -> float:
        if opened_at is None:
            return 0.0
        return max(0.0, opened_at + ttl - time.time())
