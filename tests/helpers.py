"""Small steps many tests take over HTTP."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from app.database import Database

PASSWORD = "correct horse battery staple"


async def register(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> dict[str, Any]:
    response = await client.post("/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/auth/jwt/login", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The response is a problem document (RFC 9457) with our members."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for member in ("type", "title", "detail", "instance", "code", "request_id"):
        assert member in body, f"problem lacks {member}: {body}"
    assert body["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert body["code"] == code, body
    return body


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def make_superuser(database: Database, email: str) -> None:
    """Flip the flag in the database (as `python -m app create-superuser` would have)."""
    from sqlalchemy import update

    from modules.users.models import User

    async with database.sessionmaker() as session:
        # fastapi-users types its columns as plain attributes: go through the table.
        table = User.metadata.tables["user"]
        await session.execute(update(table).where(table.c.email == email).values(is_superuser=True))
        await session.commit()


async def grant(
    client: httpx.AsyncClient, root: dict[str, str], user_id: str, role: str, permissions: list[str]
) -> None:
    """As the superuser `root`: create `role` with `permissions` and give it (alone) to the user."""
    created = await client.post(
        "/roles", json={"name": role, "permissions": permissions}, headers=root
    )
    assert created.status_code == 201, created.text
    granted = await client.put(f"/users/{user_id}/roles", json={"roles": [role]}, headers=root)
    assert granted.status_code == 200, granted.text


def wait_until_live(
    base: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    """Poll `base`/health/live until it answers 200. Fails at once, with the end of the
    server's log, if the process exits, and after `timeout` seconds (a loaded 2-core CI host
    can take tens of seconds to start a server)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/health/live", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"server did not start: {log.read_text()[-3000:]}"
        time.sleep(0.1)
