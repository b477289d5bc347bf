"""Liveness (the process answers) and readiness (the database and every module's checks)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.errors import problem_response
from app.module import CheckResult

router = APIRouter(prefix="/health", tags=["health"])

READINESS_TIMEOUT_SECONDS = 3.0


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: dict[str, Any]


@router.get("/live", summary="The process is up", response_model=Liveness)
async def live() -> Liveness:
    return Liveness()


async def _database_check(request: Request) -> CheckResult:
    try:
        await asyncio.wait_for(request.app.state.database.ping(), READINESS_TIMEOUT_SECONDS)
    except Exception as exc:
        return CheckResult(status="down", detail=type(exc).__name__)
    return CheckResult(status="ok")


@router.get(
    "/ready",
    summary="Ready to serve: database reachable, modules' checks",
    response_model=Readiness,
    responses={503: {"description": "The database (or a check marked down) is unreachable."}},
)
async def ready(request: Request) -> JSONResponse:
    results: dict[str, CheckResult] = {"database": await _database_check(request)}
    for name, check in request.app.state.readiness_checks.items():
        try:
            results[name] = await asyncio.wait_for(check(request.app), READINESS_TIMEOUT_SECONDS)
        except Exception as exc:
            results[name] = CheckResult(status="down", detail=type(exc).__name__)
    statuses = {result.status for result in results.values()}
    overall: Literal["ok", "degraded", "down"] = (
        "down" if "down" in statuses else "degraded" if "degraded" in statuses else "ok"
    )
    checks = {name: result.model_dump(exclude_none=True) for name, result in results.items()}
    if overall == "down":
        # Still a problem document (every error is), with the checks as an extension member.
        return problem_response(
            request.url.path,
            503,
            "SERVICE_UNAVAILABLE",
            "Not ready: " + ", ".join(n for n, r in results.items() if r.status == "down"),
            extra={"checks": checks},
        )
    return JSONResponse(Readiness(status=overall, checks=checks).model_dump())
