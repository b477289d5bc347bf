"""The in-process store: a clear() (a successful login) while limits' expiry task walks the
keys must not crash that task (it did: KeyError, logged by asyncio as "Task exception was never
retrieved", about one login in five once many keys were counted).

The walk takes a snapshot of the keys and awaits a thread for each; the test clears a key the
walk has not reached yet while it awaits its first thread: the exact interleaving, every time."""

from __future__ import annotations

import asyncio

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage

from modules.users.ratelimit_stores import LimitStore, SafeMemoryStorage

KEYS = 50


async def _walk_with_a_clear_in_its_middle(storage: MemoryStorage) -> BaseException | None:
    """What the expiry task raised (None: it ended cleanly)."""
    store = LimitStore(storage)
    item = RateLimitItemPerSecond(5, 900)
    for n in range(KEYS):
        await store.hit(item, "login", "user", str(n))
    if storage.timer is not None:
        await asyncio.wait([storage.timer])  # a walk that started during the hits
    await store.hit(item, "login", "user", "0")  # a new walk, over every key
    timer = storage.timer
    assert timer is not None and not timer.done()
    try:
        await asyncio.sleep(0)  # the walk starts: it awaits a thread for the first key
        assert not timer.done()
        await store.clear(item, "login", "user", str(KEYS - 1))  # a success, not walked yet
        await asyncio.wait([timer])
        return timer.exception()
    finally:
        timer.cancel()


async def test_clear_during_the_expiry_walk_crashes_nothing() -> None:
    assert await _walk_with_a_clear_in_its_middle(SafeMemoryStorage()) is None


async def test_limits_own_memory_storage_crashes_there() -> None:
    """What the fix is for (limits 5.8.0): if this stops failing, limits fixed it upstream and
    SafeMemoryStorage can go."""
    assert isinstance(await _walk_with_a_clear_in_its_middle(MemoryStorage()), KeyError)
