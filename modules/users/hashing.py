"""Password hashing off the event loop.

fastapi-users hashes (argon2id, m=64 MiB, t=3, p=4: ~110 ms wall, ~175 ms CPU) on the event
loop: during a burst of logins every other request waits behind the hashes. Here every hash and
verify runs in a small dedicated thread pool whose threads lower their own scheduling priority
(nice +10 and SCHED_BATCH on Linux; the lane threads libargon2 spawns inherit both), so the
loop thread keeps its CPU share even when the hashes saturate every core.

`OffLoopHashingManager` re-implements fastapi-users' hashing methods (`create`, `authenticate`,
`_update`) with the same logic, awaiting the pool; the user manager re-implements
`forgot_password` and `reset_password` (their token fingerprint is an HMAC: no hash at all).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.security import OAuth2PasswordRequestForm
from fastapi_users import BaseUserManager, exceptions, models, schemas
from fastapi_users.password import PasswordHelperProtocol
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from modules.users.metrics import HASH_QUEUE, HASH_WAIT

T = TypeVar("T")

THREAD_NAME_PREFIX = "password-hash"


def default_workers(processes: int = 1) -> int:
    """One core is left to the event loops, the rest shared among the worker processes
    (WEB_CONCURRENCY): max(1, (usable cores - 1) // processes). Without the division, N
    processes would each start cores - 1 threads and hashes would fight for the cores."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, (cores - 1) // max(1, processes))


def default_password_hash() -> PasswordHash:
    """fastapi-users' own choice: argon2id with argon2-cffi's defaults (m=64 MiB, t=3, p=4),
    and bcrypt for old hashes, which are upgraded at the next successful login."""
    return PasswordHash((Argon2Hasher(), BcryptHasher()))


def lower_thread_priority(nice_increment: int) -> None:
    """Run in each pool thread at start: only this thread (and what it spawns) gets slower.

    On Linux, nice and the scheduling policy are per thread, and threads created later by this
    one (libargon2's lanes) inherit them. Elsewhere this silently does nothing.
    """
    if nice_increment <= 0:
        return
    with contextlib.suppress(AttributeError, OSError):
        thread_id = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, thread_id)
        os.setpriority(os.PRIO_PROCESS, thread_id, min(19, current + nice_increment))
    # SCHED_BATCH: the scheduler treats the thread as CPU-bound and never lets its wake-ups
    # preempt the loop thread. (SCHED_IDLE would starve logins whenever the loop is busy.)
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


class PasswordHasher:
    """Async hash/verify in a dedicated, low-priority thread pool. Opened and closed by the
    users module's lifespan (see runtime.py)."""

    def __init__(
        self,
        workers: int | None = None,
        nice_increment: int = 10,
        password_hash: PasswordHash | None = None,
    ) -> None:
        self.password_hash = password_hash or default_password_hash()
        self.workers = workers or default_workers()
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers,
            thread_name_prefix=THREAD_NAME_PREFIX,
            initializer=lower_thread_priority,
            initargs=(nice_increment,),
        )
        self._dummy_hash: str | None = None
        self._dummy_lock = threading.Lock()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run a CPU-bound function in the pool (the strength check has its own: strength.py)."""
        loop = asyncio.get_running_loop()
        queued_at = time.perf_counter()
        HASH_QUEUE.inc()
        # Whoever takes this first takes the job off the queue gauge: the thread that starts
        # it, or the caller cancelled before it started. Never both.
        dequeued = threading.Lock()

        def measured() -> T:
            # In the pool's thread (the gauge and histogram are thread-safe).
            if dequeued.acquire(blocking=False):
                HASH_QUEUE.dec()
                HASH_WAIT.observe(time.perf_counter() - queued_at)
            return function(*args)

        try:
            return await loop.run_in_executor(self._executor, measured)
        finally:
            if dequeued.acquire(blocking=False):
                HASH_QUEUE.dec()

    async def hash(self, password: str) -> str:
        return await self.run(self._hash, password)

    async def verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        """(matches, a new hash when the stored one uses an old scheme, e.g. bcrypt)."""
        return await self.run(self._verify_and_update, password, hashed)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of one verify, for unknown accounts: the answer time then does not
        tell whether an account exists (Django ticket 20760). A verify against a fixed hash
        costs what a real verify costs; hashing would cost a little more."""
        await self.run(self._verify_dummy, password)

    def _hash(self, password: str) -> str:
        return self.password_hash.hash(password)

    def _verify_and_update(self, password: str, hashed: str) -> tuple[bool, str | None]:
        try:
            return self.password_hash.verify_and_update(password, hashed)
        except ValueError:
            # bcrypt 5 refuses passwords over 72 bytes instead of truncating them: such a
            # password cannot match an old bcrypt hash. A mismatch, not a 500.
            return False, None

    def _verify_dummy(self, password: str) -> None:
        with self._dummy_lock:
            if self._dummy_hash is None:
                # Made once, lazily, in the pool: nothing costly at start-up.
                self._dummy_hash = self.password_hash.hash(secrets.token_urlsafe(32))
            dummy = self._dummy_hash
        self.password_hash.verify(password, dummy)

    @property
    def guard(self) -> PasswordHelperProtocol:
        """For fastapi-users' synchronous `password_helper` slot: refuses to hash on the loop."""
        return LoopGuardPasswordHelper(self.password_hash)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class HashingOnEventLoopError(RuntimeError):
    """A code path reached fastapi-users' synchronous password helper from the event loop."""


class LoopGuardPasswordHelper(PasswordHelperProtocol):
    """fastapi-users' PasswordHelper, but hashing on an event-loop thread is an error.

    Every manager method that hashes is re-implemented by `OffLoopHashingManager`; a code path
    that still reaches the synchronous helper (a new fastapi-users feature, a new override)
    fails loudly in the tests instead of stalling every request in production.
    """

    def __init__(self, password_hash: PasswordHash) -> None:
        self.password_hash = password_hash

    @staticmethod
    def _refuse_on_loop() -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop in this thread: a worker thread, or synchronous code
        raise HashingOnEventLoopError(
            "password hashing on the event loop: use `await manager.hasher.hash()` / "
            "`verify_and_update()` (modules/users/hashing.py)"
        )

    def verify_and_update(
        self, plain_password: str, hashed_password: str
    ) -> tuple[bool, str | None]:
        self._refuse_on_loop()
        return self.password_hash.verify_and_update(plain_password, hashed_password)

    def hash(self, password: str) -> str:
        self._refuse_on_loop()
        return self.password_hash.hash(password)

    def generate(self) -> str:
        return secrets.token_urlsafe()


@dataclass(frozen=True)
class CredentialCheck(Generic[models.UP]):
    """The outcome of checking a login: the account (when it exists) and whether the
    password matched it."""

    user: models.UP | None
    password_matches: bool


class OffLoopHashingManager(BaseUserManager[models.UP, models.ID]):
    """fastapi-users' BaseUserManager with every hash and verify awaited in `self.hasher`.

    The method bodies follow fastapi-users 15.0.5 (fastapi_users/manager.py) line for line,
    except for the awaited hashing; re-check them when upgrading fastapi-users.
    """

    hasher: PasswordHasher

    async def create(
        self,
        user_create: schemas.UC,
        safe: bool = False,
        request: Request | None = None,
    ) -> models.UP:
        await self.validate_password(user_create.password, user_create)
        # Hashed before the lookup, known email or not: both answers then cost one hash
        # (a known email used to answer in 15 ms instead of 250 ms).
        hashed_password = await self.hasher.hash(user_create.password)

        existing_user = await self.user_db.get_by_email(user_create.email)
        if existing_user is not None:
            raise exceptions.UserAlreadyExists()

        user_dict = (
            user_create.create_update_dict()  # type: ignore[no-untyped-call]
            if safe
            else user_create.create_update_dict_superuser()  # type: ignore[no-untyped-call]
        )
        del user_dict["password"]
        user_dict["hashed_password"] = hashed_password

        created_user = await self.user_db.create(user_dict)

        await self.on_after_register(created_user, request)

        return created_user

    async def check_credentials(
        self, credentials: OAuth2PasswordRequestForm
    ) -> CredentialCheck[models.UP]:
        """Verify a login, upgrading an old hash (bcrypt) to argon2id when it matches."""
        user = await self.user_db.get_by_email(credentials.username)
        if user is None:
            await self.hasher.verify_dummy(credentials.password)
            return CredentialCheck(user=None, password_matches=False)

        verified, updated_password_hash = await self.hasher.verify_and_update(
            credentials.password, user.hashed_password
        )
        if not verified:
            return CredentialCheck(user=user, password_matches=False)
        if updated_password_hash is not None:
            await self.user_db.update(user, {"hashed_password": updated_password_hash})
        return CredentialCheck(user=user, password_matches=True)

    async def authenticate(self, credentials: OAuth2PasswordRequestForm) -> models.UP | None:
        check = await self.check_credentials(credentials)
        return check.user if check.password_matches else None

    async def _update(self, user: models.UP, update_dict: dict[str, Any]) -> models.UP:
        validated_update_dict: dict[str, Any] = {}
        for field, value in update_dict.items():
            if field == "email" and value != user.email:
                try:
                    await self.get_by_email(value)
                    raise exceptions.UserAlreadyExists()
                except exceptions.UserNotExists:
                    validated_update_dict["email"] = value
                    validated_update_dict["is_verified"] = False
            elif field == "password" and value is not None:
                await self.validate_password(value, user)
                validated_update_dict["hashed_password"] = await self.hasher.hash(value)
            else:
                validated_update_dict[field] = value
        return await self.user_db.update(user, validated_update_dict)
