"""The ceiling: a bare FastAPI app with one trivial endpoint, run by the same uvicorn.

Whatever Gatehouse or the peer answer on their own `/health/live` is measured against this.
"""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI()


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}
