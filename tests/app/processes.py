"""The app as a user runs it: `python -m app …` / `python -m uvicorn …` in real processes, their
log (JSON lines) in a file, and fresh PostgreSQL databases to point them at."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tests.conftest import TEST_SECRET, _postgres_admin
from tests.helpers import free_port, wait_until_live

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "ENVIRONMENT": "production",
    "SECRET_KEY": TEST_SECRET,
    "PUBLIC_URL": "https://auth.example.com",
    # Production refuses the console mailer; nothing listens there (mails wait in the outbox).
    "MAIL_URL": "smtp://127.0.0.1:1",
}


def app_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/app.db",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class Server:
    """A running server process; `log_lines()` parses what it wrote so far."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process, self.base_url, self.log = process, base_url, log

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines

    def pid_of(self, request_id: str) -> int | None:
        """The worker that served the request (its access line carries the request id)."""
        for line in self.log_lines():
            if line.get("request_id") == request_id and "status" in line:
                return int(line["pid"])
        return None


@contextmanager
def start(args: list[str], env: dict[str, str], log: Path) -> Iterator[Server]:
    """Start `python -m <args> --port P`, wait until it answers /health/live, stop it at exit
    (when the test has not already)."""
    port = free_port()
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", *args, "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_live(server.base_url, process, log)
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=60)


@contextmanager
def fresh_postgres_database(server_url: str, name: str) -> Iterator[str]:
    """An empty database of this test's own on the server of `server_url`."""
    full = f"{name}_{os.getpid()}"
    _postgres_admin(server_url, f'DROP DATABASE IF EXISTS "{full}" WITH (FORCE)')
    _postgres_admin(server_url, f'CREATE DATABASE "{full}"')
    try:
        yield make_url(server_url).set(database=full).render_as_string(hide_password=False)
    finally:
        _postgres_admin(server_url, f'DROP DATABASE IF EXISTS "{full}" WITH (FORCE)')
