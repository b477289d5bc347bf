"""Work done after the answer has gone out (mails, their tokens), owned by the app.

One set of tasks per app, drained by the factory's lifespan before any module closes: a reset
mail requested just before shutdown still finds its database and its mailer open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from fastapi import FastAPI
from loguru import logger


class BackgroundTasks:
    """Tasks with a strong reference (asyncio keeps only weak ones), awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._periodic: set[asyncio.Task[None]] = set()
        # Set once the one-off jobs have ended at shutdown: periodic jobs end their loop.
        self.stopping = asyncio.Event()

    def submit(self, name: str, job: Coroutine[Any, Any, None], *, periodic: bool = False) -> None:
        """`periodic`: a loop that runs until `stopping` is set (e.g. the mail outbox's
        drain); at shutdown it is stopped only after the one-off jobs have ended."""
        task = asyncio.get_running_loop().create_task(self._run(name, job))
        tasks = self._periodic if periodic else self._tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    @staticmethod
    async def _run(name: str, job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except Exception as exc:
            # The class name only: a driver's message may hold SQL or an address.
            logger.error("background job failed: {} ({})", name, type(exc).__name__)

    async def drain(self, grace_seconds: float = 5.0) -> None:
        """Wait for every one-off task, including those submitted meanwhile (a job that
        queues a mail); then set `stopping` and wait for the periodic ones (the outbox sends
        what those jobs queued, then ends). Past the grace period, cancel what is left:
        shutdown never hangs on them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while self._tasks and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._tasks), timeout=remaining)
        self.stopping.set()
        while self._periodic and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._periodic), timeout=remaining)
        leftover = self._tasks | self._periodic
        for task in leftover:
            task.cancel()
        if leftover:
            logger.warning("shutdown cancelled {} background task(s)", len(leftover))
            await asyncio.gather(*leftover, return_exceptions=True)


def background_tasks(app: FastAPI) -> BackgroundTasks:
    tasks: BackgroundTasks = app.state.background
    return tasks
