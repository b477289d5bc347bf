"""Liveness and readiness."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from app.module import CheckResult


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_reports_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"] == {"status": "ok"}
    assert body["checks"]["schema"] == {"status": "ok"}


async def test_ready_has_one_line_per_check(client: httpx.AsyncClient) -> None:
    """Database, schema, the limiter's store, the circuits: one entry each."""
    checks = (await client.get("/health/ready")).json()["checks"]
    assert set(checks) == {"database", "schema", "users.limiter", "integrations.circuits"}
    assert checks["users.limiter"] == {"status": "ok", "detail": {"store": "memory"}}
    assert all(
        state == {"state": "closed"} for state in checks["integrations.circuits"]["detail"].values()
    )


async def test_degraded_check_keeps_200_and_failing_check_is_503(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    async def degraded(_: FastAPI) -> CheckResult:
        return CheckResult(status="degraded", detail={"circuit": "open"})

    async def broken(_: FastAPI) -> CheckResult:
        raise RuntimeError("check crashed")

    app.state.readiness_checks["demo.degraded"] = degraded
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["demo.degraded"]["detail"] == {"circuit": "open"}

    app.state.readiness_checks["demo.broken"] = broken
    response = await client.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["demo.broken"]["status"] == "down"
