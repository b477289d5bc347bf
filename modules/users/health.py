"""Readiness: which store the rate limits count in. `degraded` (still 200) while REDIS_URL is
set but Redis does not answer: the limits then hold per process only."""

from __future__ import annotations

from fastapi import FastAPI

from app.module import CheckResult
from modules.users.runtime import UsersRuntime


async def limiter_check(app: FastAPI) -> CheckResult:
    runtime: UsersRuntime = app.state.users
    health = await runtime.limiter.health()
    return CheckResult(status=health.status, detail={"store": health.store})
