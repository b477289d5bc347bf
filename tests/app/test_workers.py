"""Several worker processes on PostgreSQL (+ Redis), over real processes: sessions shared by
every worker, a graceful SIGTERM, and migrations run from two places at once."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from app.database import create_engine
from app.migrations import ADVISORY_LOCK_KEY
from tests.app.processes import PRODUCTION, ROOT, Server, app_env, fresh_postgres_database, run
from tests.app.processes import start as start_server
from tests.helpers import PASSWORD
from tests.redis_server import RedisServer, throwaway_redis
from tests.services import require_postgres

# In .ci/run it runs in the PostgreSQL suite (SPLIT_BACKEND_NEUTRAL, tests/conftest.py).
pytestmark = pytest.mark.backend_neutral(ci_run="postgres")

GRACEFUL_TIMEOUT = 20


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database(require_postgres(), "gatehouse_workers") as url:
        yield url


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from throwaway_redis(tmp_path)


def _fresh_connection_get(base_url: str, path: str, request_id: str, **headers: str) -> int:
    # A new connection per request: the kernel hands each to whichever worker accepts first.
    with httpx.Client(base_url=base_url, timeout=60) as client:
        response = client.get(path, headers={"X-Request-ID": request_id, **headers})
        return response.status_code


async def _spread(base_url: str, path: str, prefix: str, count: int, **headers: str) -> list[int]:
    """`count` requests at once, each on its own connection; their status codes."""
    return await asyncio.gather(
        *(
            asyncio.to_thread(_fresh_connection_get, base_url, path, f"{prefix}-{i}", **headers)
            for i in range(count)
        )
    )


def _served_by(server: Server, prefix: str) -> dict[str, int]:
    """request id → pid of the worker whose access line carries it."""
    return {
        line["request_id"]: int(line["pid"])
        for line in server.log_lines()
        if str(line.get("request_id", "")).startswith(prefix) and "status" in line
    }


def _wait_for_access_lines(server: Server, prefix: str, count: int) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while len(served := _served_by(server, prefix)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return served


def _worker_pids(server: Server) -> set[int]:
    """The processes whose app finished its start-up (the factory's `started: …` line)."""
    lines = server.log_lines()
    return {int(line["pid"]) for line in lines if line["message"].startswith("started: ")}


def _wait_for_workers(server: Server, count: int) -> set[int]:
    deadline = time.monotonic() + 60
    while len(pids := _worker_pids(server)) < count:
        assert time.monotonic() < deadline, server.log.read_text()
        time.sleep(0.1)
    return pids


def _login(base_url: str, email: str) -> dict[str, str]:
    response = httpx.post(
        f"{base_url}/auth/jwt/login", data={"username": email, "password": PASSWORD}, timeout=60
    )
    assert response.status_code == 200, response.text
    tokens: dict[str, str] = response.json()
    return tokens


async def test_two_workers_serve_and_share_sessions(
    postgres_url: str, redis: RedisServer, tmp_path: Path
) -> None:
    env = app_env(tmp_path, **PRODUCTION, DATABASE_URL=postgres_url, REDIS_URL=redis.url)
    assert run(["app", "migrate"], env).returncode == 0
    serve = ["app", "serve", "--workers", "2"]
    with start_server(serve, env, tmp_path / "server.log") as server:
        workers = _wait_for_workers(server, 2)
        assert server.process.pid not in workers  # uvicorn's supervisor, serving nothing

        # Requests are served by both workers (each access line names its process).
        served: dict[str, int] = {}
        for attempt in range(10):
            codes = await _spread(server.base_url, "/health/ready", f"spread{attempt}", 12)
            assert set(codes) == {200}
            served.update(_wait_for_access_lines(server, f"spread{attempt}", 12))
            if set(served.values()) == workers:
                break
        assert set(served.values()) == workers, served

        # A logout through one worker is refused by the other at once.
        assert (
            httpx.post(
                f"{server.base_url}/auth/register",
                json={"email": "ada@example.com", "password": PASSWORD},
                timeout=60,
            ).status_code
            == 201
        )
        tokens = _login(server.base_url, "ada@example.com")
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        with httpx.Client(base_url=server.base_url, timeout=60) as client:
            out = client.post("/auth/jwt/logout", headers={**bearer, "X-Request-ID": "logout-1"})
        assert out.status_code == 204, out.text
        logout_pid = _wait_for_access_lines(server, "logout-1", 1)["logout-1"]
        other_seen = False
        for attempt in range(10):
            prefix = f"after{attempt}"
            codes = await _spread(server.base_url, "/users/me", prefix, 8, **bearer)
            assert set(codes) == {401}, codes
            if set(_wait_for_access_lines(server, prefix, 8).values()) - {logout_pid}:
                other_seen = True
                break
        assert other_seen, "no request reached the other worker"

        text_log = server.log.read_text()
        assert "limits are counted in each process" not in text_log  # REDIS_URL is set
        assert tokens["access_token"] not in text_log and PASSWORD not in text_log


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(c) for c in (task / "children").read_text().split())
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "zombie" not in status.read_text()


async def test_sigterm_during_a_login_lets_it_finish_and_exits_0(
    postgres_url: str, tmp_path: Path
) -> None:
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the worker processes")
    env = app_env(tmp_path, **PRODUCTION, DATABASE_URL=postgres_url)
    assert run(["app", "migrate"], env).returncode == 0
    serve = ["app", "serve", "--workers", "2", "--graceful-timeout", str(GRACEFUL_TIMEOUT)]
    with start_server(serve, env, tmp_path / "server.log") as server:
        workers = _wait_for_workers(server, 2)
        assert workers <= _children(server.process.pid)
        response = httpx.post(
            f"{server.base_url}/auth/register",
            json={"email": "ada@example.com", "password": PASSWORD},
            timeout=60,
        )
        assert response.status_code == 201

        # A login whose body is half sent when SIGTERM arrives: it is in flight.
        body = f"username=ada%40example.com&password={PASSWORD.replace(' ', '+')}".encode()
        port = int(server.base_url.rsplit(":", 1)[1])
        sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        sock.sendall(
            b"POST /auth/jwt/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"X-Request-ID: sigterm-login\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:10]
        )
        await asyncio.sleep(1)  # the worker has read the headers
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        # Every worker has begun its shutdown (stopped accepting) before the body ends.
        deadline = time.monotonic() + 30
        while (
            sum("Shutting down" in line["message"] for line in server.log_lines()) < len(workers)
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.1)
        sock.sendall(body[10:])
        raw = b""
        while chunk := await asyncio.to_thread(sock.recv, 65536):
            raw += chunk
        sock.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), raw[:500]
        assert b"access_token" in payload

        assert server.process.wait(timeout=GRACEFUL_TIMEOUT + 30) == 0
        # Within the graceful timeout plus the background drain (5 s) and a loaded host's slack.
        elapsed = time.monotonic() - started
        assert elapsed < GRACEFUL_TIMEOUT + 20, elapsed
        assert not any(_alive(pid) for pid in workers)
        lines = server.log_lines()
        finished = {
            int(line["pid"]) for line in lines if "Finished server process" in line["message"]
        }
        assert finished == workers  # each worker ran its shutdown to the end
        stopping = {int(line["pid"]) for line in lines if line["message"] == "stopping"}
        assert stopping == workers  # the lifespan's exit: background drain, pools closed
        # Several workers without REDIS_URL: said once, by the supervisor, not per worker.
        warnings = [
            line for line in lines if "limits are counted in each process" in line["message"]
        ]
        assert len(warnings) == 1, warnings
        assert warnings[0]["pid"] == server.process.pid


async def _waiting_advisory_locks(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                )
            )
            return int(result.scalar_one())
    finally:
        await engine.dispose()


async def test_two_migrate_at_once_wait_for_each_other(postgres_url: str, tmp_path: Path) -> None:
    env = app_env(tmp_path, DATABASE_URL=postgres_url)
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as holder:
            # The test holds the migrations' lock: both commands must queue behind it, so they
            # start their upgrades at the same instant when it is released.
            await holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            processes = [
                subprocess.Popen(
                    [sys.executable, "-m", "app", "migrate"],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            deadline = time.monotonic() + 60
            while await _waiting_advisory_locks(postgres_url) < 2:
                assert all(p.poll() is None for p in processes), [
                    p.communicate() for p in processes
                ]
                assert time.monotonic() < deadline, "the migrations did not wait on the lock"
                await asyncio.sleep(0.1)
            await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
            await holder.commit()
        outputs = [p.communicate(timeout=120) for p in processes]
        assert [p.returncode for p in processes] == [0, 0], outputs
        errors = [err for _, err in outputs]
        # One applied every revision, the other found the schema at head.
        assert sum("migrations applied: users_0001" in e for e in errors) == 1, errors
        assert sum("nothing to apply: the schema is at head" in e for e in errors) == 1, errors
        async with engine.connect() as connection:
            heads = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).all()
        from app import migrations
        from tests.conftest import TEST_MODULES

        inspector = migrations.SchemaInspector(postgres_url, TEST_MODULES)
        assert sorted(h[0] for h in heads) == sorted(inspector.script.get_heads())
    finally:
        await engine.dispose()
