"""Housekeeping: every module's `purges` (rows nothing needs any more), run in bounded batches.

Each batch is one short transaction (at most PURGE_BATCH_SIZE rows): a purge of millions of
rows never holds a long lock, nor SQLite's write lock for more than one batch, and stopping
half-way loses nothing (the next run goes on). A run holds the `exclusive` lock
`gatehouse.purge` throughout, so with several workers (or machines) one of them runs it at a
time; the others skip that round.

Runs: every PURGE_INTERVAL seconds in each serving process (the first one at a random point
of the first interval, so workers started together do not all try at once), and on demand
with `python -m app purge`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from app.database import Database, unit_of_work
from app.loader import LoadedModule
from app.locks import exclusive
from app.metrics import count_job_failure
from app.module import PurgeBatch

LOCK_NAME = "gatehouse.purge"


@dataclass(frozen=True)
class PurgeJob:
    name: str  # "<module>.<purge>", e.g. "users.sessions"
    run_batch: Callable[[AsyncSession, datetime, int], Awaitable[int]]  # (session, now, limit)


@dataclass(frozen=True)
class PurgeResult:
    name: str
    deleted: int
    batches: int


def _bound(
    batch: PurgeBatch[Any], settings: Any
) -> Callable[[AsyncSession, datetime, int], Awaitable[int]]:
    async def run_batch(db: AsyncSession, now: datetime, limit: int) -> int:
        return await batch(db, settings, now, limit)

    return run_batch


def purge_jobs(loaded: Sequence[LoadedModule]) -> list[PurgeJob]:
    """Every loaded module's purges, each bound to that module's settings."""
    return [
        PurgeJob(f"{item.module.name}.{name}", _bound(batch, item.settings))
        for item in loaded
        for name, batch in item.module.purges.items()
    ]


async def run_job(database: Database, job: PurgeJob, batch_size: int) -> PurgeResult:
    """Batches until one deletes fewer than `batch_size` rows. `now` is fixed at the start:
    rows that end during the run wait for the next one (the loop always terminates)."""
    now = datetime.now(UTC)
    deleted = batches = 0
    while True:
        async with unit_of_work(database) as session:
            count = await job.run_batch(session, now, batch_size)
        batches += 1
        deleted += count
        if count < batch_size:
            return PurgeResult(job.name, deleted, batches)


async def purge_once(
    database: Database, jobs: Sequence[PurgeJob], batch_size: int, wait: float = 0.0
) -> list[PurgeResult] | None:
    """Every job once, under the lock; None when another process holds it (after `wait`)."""
    async with exclusive(database, LOCK_NAME, wait) as acquired:
        if not acquired:
            return None
        results = []
        for job in jobs:
            result = await run_job(database, job, batch_size)
            results.append(result)
            if result.deleted:
                logger.bind(job=job.name, rows=result.deleted, batches=result.batches).info(
                    "purged {} row(s): {}", result.deleted, job.name
                )
        return results


async def _every(
    database: Database, jobs: Sequence[PurgeJob], interval: float, batch_size: int
) -> None:
    # The first run somewhere in the first interval: workers started together spread out.
    await asyncio.sleep(random.uniform(0, interval))
    while True:
        try:
            if await purge_once(database, jobs, batch_size) is None:
                logger.debug("purge skipped: another process is running it")
        except Exception as exc:
            # The class name only: a driver's message may quote SQL. The next round retries.
            logger.error("background job failed: purge ({})", type(exc).__name__)
            count_job_failure("purge")
        await asyncio.sleep(interval)


@asynccontextmanager
async def scheduled(
    database: Database, jobs: Sequence[PurgeJob], interval: float, batch_size: int
) -> AsyncIterator[None]:
    """Runs the purges every `interval` seconds while the block runs (0: never)."""
    if interval <= 0 or not jobs:
        yield
        return
    task = asyncio.create_task(_every(database, jobs, interval, batch_size), name="purge")
    try:
        yield
    finally:
        task.cancel()  # a batch cut short rolls back; the next run redoes it
        await asyncio.gather(task, return_exceptions=True)
