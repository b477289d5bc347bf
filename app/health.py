"""Liveness (the process answers) and readiness: one line per check.

- `database`: reachable (a `SELECT 1`);
- `schema`: at the head of every loaded module's migrations; `down` while it is behind, with the
  pending revisions and the command that applies them (production never migrates by itself);
- every module's checks (`users.limiter`: the rate limits' store, `degraded` while Redis is set
  but does not answer; `integrations.circuits`: each circuit's state).

Any `down` answers 503 (a load balancer stops sending traffic); `degraded` still answers 200.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.errors import problem_response
from app.migrations import MIGRATE_COMMAND, SchemaInspector
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


async def _schema_check(request: Request) -> CheckResult:
    inspector: SchemaInspector = request.app.state.schema
    try:
        status = await asyncio.wait_for(
            inspector.check(request.app.state.database), READINESS_TIMEOUT_SECONDS
        )
    except Exception as exc:
        return CheckResult(status="down", detail=type(exc).__name__)
    if status.at_head:
        return CheckResult(status="ok")
    detail: dict[str, Any] = {"pending": list(status.pending), "run": MIGRATE_COMMAND}
    if status.unknown:
        detail["unknown"] = list(status.unknown)
    return CheckResult(status="down", detail=detail)


def _down_line(name: str, result: CheckResult) -> str:
    detail = result.detail
    if isinstance(detail, dict) and "pending" in detail:
        pending = ", ".join(detail["pending"])
        unknown = ", ".join(detail.get("unknown", ()))
        what = f"pending migrations {pending}" if pending else f"unknown revisions {unknown}"
        return f"{name} ({what}; run `{detail['run']}`)"
    return name


@router.get(
    "/ready",
    summary="Ready to serve: database, schema, limiter store, circuits",
    response_model=Readiness,
    responses={
        503: {
            "description": "The database is unreachable, the schema is behind the code (the "
            "pending migrations are named), or another check is down."
        }
    },
)
async def ready(request: Request) -> JSONResponse:
    results: dict[str, CheckResult] = {"database": await _database_check(request)}
    results["schema"] = await _schema_check(request)
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
            "Not ready: "
            + ", ".join(_down_line(n, r) for n, r in results.items() if r.status == "down"),
            extra={"checks": checks},
        )
    return JSONResponse(Readiness(status=overall, checks=checks).model_dump())
