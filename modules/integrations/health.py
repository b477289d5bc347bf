"""Readiness: every circuit with its state, nothing more.

An open (or half-open) circuit makes the app `degraded`, still 200: the app serves, the
feature behind that upstream is skipped or delayed. The endpoint is public: failure counts and
the moment a circuit opened would tell an attacker when to strike to keep it open, so they
stay in the log (every failure and state change is logged) and out of this answer.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.module import CheckResult
from modules.integrations.service import get_integrations


async def circuits_check(app: FastAPI) -> CheckResult:
    states = await get_integrations(app).breakers.snapshot()
    degraded = any(state.state != "closed" for state in states.values())
    return CheckResult(
        status="degraded" if degraded else "ok",
        detail={name: {"state": state.state} for name, state in states.items()},
    )
