"""Work done after the answer has gone out (mails, their tokens), owned by the app.

One set of tasks per app, drained by the factory's lifespan before any module closes: a reset
mail requested just before shutdown still finds its database and its mailer open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import FastAPI
from loguru import logger

from app.metrics import count_job_failure


class BackgroundTasks:
    """Tasks with a strong reference (asyncio keeps only weak ones), awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._flushers: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    def on_drain(self, name: str, flush: Callable[[], Awaitable[None]]) -> None:
        """Run `flush` at each drain, once the tasks have ended: e.g. the mail outbox sends
        what they queued (a reset asked for just before shutdown still goes out)."""
        self._flushers.append((name, flush))

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
            count_job_failure(name)

    async def drain(self, grace_seconds: float = 5.0) -> None:
        """Wait for every task, including those submitted meanwhile (a job that queues a
        mail), then run the flushers; past the grace period, cancel what is left: shutdown
        never hangs on them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._tasks and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
        for name, flush in self._flushers:
            if (remaining := deadline - loop.time()) <= 0:
                break
            try:
                await asyncio.wait_for(flush(), remaining)
            except Exception as exc:  # TimeoutError included: shutdown never hangs on it
                logger.warning("background flush cut short: {} ({})", name, type(exc).__name__)
        leftover = set(self._tasks)
        for task in leftover:
            task.cancel()
        if leftover:
            logger.warning("shutdown cancelled {} background task(s)", len(leftover))
            await asyncio.gather(*leftover, return_exceptions=True)


def background_tasks(app: FastAPI) -> BackgroundTasks:
    tasks: BackgroundTasks = app.state.background
    return tasks
