"""Work done after the answer has gone out (reset and verification mails), owned by the app.

The answer to forgot-password and request-verify-token must not depend on whether the account
exists, in body or in time: the lookup, the fingerprint hash and the token are made here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from loguru import logger


class BackgroundJobs:
    """Tasks with a strong reference (asyncio keeps only weak ones), awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self, name: str, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._run(name, job))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _run(name: str, job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except Exception as exc:
            # The class name only: a driver's message may hold SQL or an address.
            logger.error("background job failed: {} ({})", name, type(exc).__name__)

    async def drain(self, grace_seconds: float = 5.0) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        for task in set(self._tasks):
            task.cancel()
