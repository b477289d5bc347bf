"""Brute-force and flood protection: failed logins per username and per client address,
successful logins and registrations per address, mail requests per email and per address.

Moving windows of LOGIN_FAILURE_WINDOW seconds (`limits`). A username's attempt is counted
before its password is checked and a success clears it. An address counts only failures (an
office behind one NAT address must not lock itself out by logging in), so before the password
check each attempt reserves an in-flight slot for its address, refused when the failures in the
window plus the attempts in flight would pass the limit: parallel guesses cannot exceed the
remaining budget. The slot is released after the check, once a failure is counted.

Counts live in process memory, and with REDIS_URL in Redis too, written to both. While Redis
answers, the stricter of its counts (shared by every instance) and this process's own decides
(the attempts in flight are Redis's count plus this process's attempts that could not reserve
there, see `_stricter_view`): a write Redis missed (a call that timed out after Redis had
answered others, a Redis restarted empty) never loosens a limit. When Redis does not answer
(down, black-holed, its circuit open) the counts of this process decide: never no limit. Calls
to Redis go through the integrations module's `redis` circuit with a short timeout
(`call_redis`); when the circuit lets a trial through and Redis answers, Redis decides again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from fastapi import FastAPI
from limits import RateLimitItem, RateLimitItemPerSecond
from loguru import logger

from app.net import limit_key
from modules.integrations import IntegrationError, call_redis
from modules.users.emails import canonical_email
from modules.users.exceptions import RateLimited
from modules.users.ratelimit_stores import LimitStore, MemoryLimitStore, RedisLimitStore
from modules.users.settings import UsersSettings

T = TypeVar("T")

ADDRESS_FACTOR = 4  # a client address may fail this many times more than one username

# "matched": the right password outside a login (the current password of a change): clears
# the username's count like a success, spends no login.
Outcome = Literal["succeeded", "matched", "failed", "abandoned"]


def _key(value: str) -> str:
    # The canonical address (the form the account lookup uses, so each spelling that reaches
    # one account counts in one bucket), hashed: bounded key size, and the storage (Redis)
    # never holds an email address.
    return hashlib.sha256(canonical_email(value).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Limit:
    item: RateLimitItem
    namespace: str
    scope: str  # "user" or "address": for logs, never in an answer
    identifier: str

    @property
    def ids(self) -> tuple[str, str, str]:
        return self.namespace, self.scope, self.identifier


@dataclass(frozen=True)
class LoginAttempt:
    """A login between `begin_login` and `end_login`: what it counted and reserved."""

    user: _Limit
    address: str | None  # the address's limit key
    redis_reserved: bool  # the in-flight slot is also held in Redis


@dataclass(frozen=True)
class _AddressView:
    in_flight: int
    failures: int
    failures_wait: int
    logins: int
    logins_wait: int


@dataclass(frozen=True)
class LimiterHealth:
    status: Literal["ok", "degraded"]
    store: Literal["memory", "redis"]


def _stricter_view(local: _AddressView, shared: _AddressView, unshared: int) -> _AddressView:
    """Failures and logins: the larger count (a write Redis missed never loosens a limit).
    In flight: Redis's count plus this process's attempts that hold no Redis slot (`unshared`:
    they fell back to memory when Redis did not answer). Never the larger of the two in-flight
    counts: each is a position in its own order of arrival, and parallel reservations can reach
    memory and Redis in different orders; an attempt late in one and early in the other would
    take the late number from both, and a burst would then refuse every attempt."""
    return _AddressView(
        in_flight=shared.in_flight + unshared,
        failures=max(local.failures, shared.failures),
        failures_wait=max(local.failures_wait, shared.failures_wait),
        logins=max(local.logins, shared.logins),
        logins_wait=max(local.logins_wait, shared.logins_wait),
    )


def _both(local: bool, shared: bool) -> bool:
    """A hit counts only when neither store is full."""
    return local and shared


def _larger(local: tuple[int, int], shared: tuple[int, int]) -> tuple[int, int]:
    """(used, seconds until free): the larger of each."""
    return max(local[0], shared[0]), max(local[1], shared[1])


def _either(local: T, shared: T) -> T:
    """A lock or refusal seen by either store stands (Redis's first: it names the wider one)."""
    return shared if shared is not None else local


class AuthLimiter:
    def __init__(
        self,
        settings: UsersSettings,
        redis: RedisLimitStore | None = None,
        app: FastAPI | None = None,
    ) -> None:
        window = settings.login_failure_window
        self.per_user = RateLimitItemPerSecond(settings.login_max_failures, window)
        self.per_address = RateLimitItemPerSecond(
            settings.login_max_failures * ADDRESS_FACTOR, window
        )
        self.logins_per_address = RateLimitItemPerSecond(settings.logins_per_address, window)
        self.registrations = RateLimitItemPerSecond(settings.registrations_per_address, window)
        self.memory = MemoryLimitStore()
        self.redis = redis
        self.app = app  # for `call_redis`: the integrations module's circuit
        self.redis_reachable = redis is not None
        # Per address key: this process's logins in flight that hold no Redis slot.
        self._unshared: dict[str, int] = {}

    @classmethod
    def open(
        cls, redis_url: str | None, settings: UsersSettings, app: FastAPI | None = None
    ) -> AuthLimiter:
        return cls(settings, RedisLimitStore(redis_url) if redis_url else None, app)

    async def close(self) -> None:
        await self.memory.close()
        if self.redis is not None:
            await self.redis.close()

    # Logins ------------------------------------------------------------------------------

    async def begin_login(self, username: str, address: str | None) -> LoginAttempt:
        """Before any password is checked: reserve the address's slot, count the username's
        attempt; 429 (`RateLimited`) when either is over its limit. Every attempt that this
        returns must be ended with `end_login`."""
        user = _Limit(self.per_user, "login", "user", _key(username))
        key = limit_key(address) if address else None
        attempt = LoginAttempt(user, key, redis_reserved=False)
        if key is not None:
            view, on_redis = await self._decide(
                lambda store: self._reserve(store, key),
                lambda local, shared: _stricter_view(local, shared, self._unshared.get(key, 0)),
            )
            attempt = LoginAttempt(user, key, redis_reserved=on_redis)
            if not on_redis:
                self._unshared[key] = self._unshared.get(key, 0) + 1
            refusal = self._address_refusal(view)
            if refusal is not None:
                await self._release(attempt)
                raise refusal
        counted, _ = await self._decide(lambda store: store.hit(user.item, *user.ids), _both)
        if not counted:
            (_, wait), _ = await self._decide(
                lambda store: store.count(user.item, *user.ids), _larger
            )
            await self._release(attempt)
            raise RateLimited(retry_after=wait, scope="user")
        return attempt

    async def end_login(self, attempt: LoginAttempt, outcome: Outcome) -> str | None:
        """Count the outcome and free the address's slot. A success clears the username's
        count (not the address's: one good account must not reset an attacker's count on
        others) and spends one of the address's logins. Returns the scope now locked, if any.
        "abandoned" (the check itself failed, e.g. the database) only frees the slot."""
        locked = None
        if outcome in ("succeeded", "matched"):
            spend = outcome == "succeeded"
            await self._decide(lambda store: self._succeeded(store, attempt, spend))
        elif outcome == "failed":
            locked, _ = await self._decide(lambda store: self._failed(store, attempt), _either)
        await self._release(attempt)
        return locked

    async def _reserve(self, store: LimitStore, key: str) -> _AddressView:
        in_flight = await store.reserve(f"login:{key}")
        failures, failures_wait = await store.count(self.per_address, "login", "address", key)
        logins, logins_wait = await store.count(self.logins_per_address, "logins", "address", key)
        return _AddressView(in_flight, failures, failures_wait, logins, logins_wait)

    def _address_refusal(self, view: _AddressView) -> RateLimited | None:
        # The attempts in flight (this one included) may still all fail, or all succeed.
        if view.failures + view.in_flight > self.per_address.amount:
            full = view.failures >= self.per_address.amount
            # Refused only for the attempts in flight: they end within a second or so.
            return RateLimited(retry_after=view.failures_wait if full else 1, scope="address")
        if view.logins + view.in_flight > self.logins_per_address.amount:
            full = view.logins >= self.logins_per_address.amount
            return RateLimited(retry_after=view.logins_wait if full else 1, scope="address")
        return None

    async def _succeeded(self, store: LimitStore, attempt: LoginAttempt, spend: bool) -> None:
        await store.clear(attempt.user.item, *attempt.user.ids)
        if spend and attempt.address is not None:
            await store.hit(self.logins_per_address, "logins", "address", attempt.address)

    async def _failed(self, store: LimitStore, attempt: LoginAttempt) -> str | None:
        if attempt.address is not None:
            # Before the slot is freed: failures + in flight never drops below the truth.
            await store.hit(self.per_address, "login", "address", attempt.address)
        user_failures, _ = await store.count(attempt.user.item, *attempt.user.ids)
        if user_failures >= attempt.user.item.amount:
            return "user"
        if attempt.address is not None:
            failures, _ = await store.count(self.per_address, "login", "address", attempt.address)
            if failures >= self.per_address.amount:
                return "address"
        return None

    async def _release(self, attempt: LoginAttempt) -> None:
        if attempt.address is None:
            return
        key = f"login:{attempt.address}"
        await self.memory.release(key)
        if not attempt.redis_reserved:
            left = self._unshared.get(attempt.address, 0) - 1
            if left > 0:
                self._unshared[attempt.address] = left
            else:
                self._unshared.pop(attempt.address, None)
        redis = self.redis
        if attempt.redis_reserved and redis is not None:
            try:
                await call_redis(self.app, lambda: redis.release(key))
            except IntegrationError as exc:
                self._redis_failed(exc)  # the counter expires by itself (its TTL)

    # Registrations and mail requests ------------------------------------------------------

    async def hit_registration(self, address: str | None) -> None:
        """Count a registration attempt of this address; 429 past REGISTRATIONS_PER_ADDRESS."""
        if not address:
            return
        limit = _Limit(self.registrations, "register", "address", limit_key(address))
        counted, _ = await self._decide(lambda store: store.hit(limit.item, *limit.ids), _both)
        if not counted:
            (_, wait), _ = await self._decide(
                lambda store: store.count(limit.item, *limit.ids), _larger
            )
            raise RateLimited(retry_after=wait, scope="address")

    async def hit_mail_request(self, kind: str, email: str, address: str | None) -> None:
        """Count a forgot-password / verify request, known account or not; 429 past the limit."""
        limits = [_Limit(self.per_user, f"mail-{kind}", "user", _key(email))]
        if address:
            limits.append(_Limit(self.per_address, f"mail-{kind}", "address", limit_key(address)))
        refusal, _ = await self._decide(lambda store: self._hit_all(store, limits), _either)
        if refusal is not None:
            raise refusal

    @staticmethod
    async def _hit_all(store: LimitStore, limits: list[_Limit]) -> RateLimited | None:
        refusal = None
        for limit in limits:
            used, wait = await store.count(limit.item, *limit.ids)
            if used >= limit.item.amount and (refusal is None or wait > refusal.retry_after):
                refusal = RateLimited(retry_after=wait, scope=limit.scope)
        if refusal is None:
            for limit in limits:
                await store.hit(limit.item, *limit.ids)
        return refusal

    # Stores ------------------------------------------------------------------------------

    async def _decide(
        self,
        unit: Callable[[LimitStore], Awaitable[T]],
        stricter: Callable[[T, T], T] | None = None,
    ) -> tuple[T, bool]:
        """Run `unit` on process memory (always: the fallback must know the history) and on
        Redis when configured and reachable. Returns the answer that decides and whether Redis
        gave one. With Redis's answer, `stricter(local, shared)` decides: this process's counts
        are a part of the shared ones, so a local count above Redis's means Redis missed a
        write, and the larger count is the true one."""
        local = await unit(self.memory)
        redis = self.redis
        if redis is None:
            return local, False
        try:
            shared = await call_redis(self.app, lambda: unit(redis))
        except IntegrationError as exc:
            self._redis_failed(exc)
            return local, False
        self._redis_answered()
        return (shared if stricter is None else stricter(local, shared)), True

    async def health(self) -> LimiterHealth:
        """Which store decides now; pings Redis (through its circuit) when there is one."""
        redis = self.redis
        if redis is None:
            return LimiterHealth(status="ok", store="memory")
        try:
            await call_redis(self.app, redis.ping)
        except IntegrationError as exc:
            self._redis_failed(exc)
            return LimiterHealth(status="degraded", store="memory")
        self._redis_answered()
        return LimiterHealth(status="ok", store="redis")

    def _redis_failed(self, exc: IntegrationError) -> None:
        if self.redis_reachable:
            self.redis_reachable = False
            logger.warning(
                "rate limit store: Redis unreachable ({}): limits counted in this process "
                "until it answers again",
                type(exc).__name__,
            )

    def _redis_answered(self) -> None:
        if not self.redis_reachable:
            self.redis_reachable = True
            logger.info("rate limit store: Redis answers again: limits shared again")
