"""Only TRUSTED_PROXIES decides whether X-Forwarded-For is believed, not the server's own
proxy-headers default. uvicorn trusts X-Forwarded-For from 127.0.0.1 and ::1 unless told
otherwise (`--no-proxy-headers`): the ways this project launches it must turn that off.

Real processes over real TCP from 127.0.0.1: a login with a forged X-Forwarded-For must be
recorded (and rate limited) as 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.app.processes import app_env
from tests.app.test_cli import ROOT, _run
from tests.helpers import PASSWORD, free_port, wait_until_live

pytestmark = pytest.mark.backend_neutral

FORGED = "203.0.113.9"
UVICORN = [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1"]


def _launch(how: str, port: int) -> list[str]:
    return {
        # -o: the .venv is there already (the stamp may look older than the lock in a copy).
        "make run": ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
        "python -m app serve": [sys.executable, "-m", "app", "serve", "--port", str(port)],
        # The README's bare-uvicorn command.
        "uvicorn --no-proxy-headers": [*UVICORN, "--port", str(port), "--no-proxy-headers"],
        "uvicorn (its defaults)": [*UVICORN, "--port", str(port)],
    }[how]


@contextmanager
def _started(tmp_path: Path, how: str) -> Iterator[str]:
    port = free_port()
    env = app_env(tmp_path, PORT=str(port), HOST="127.0.0.1")
    assert _run(["app", "migrate"], env).returncode == 0
    log = tmp_path / "server.log"
    with log.open("w") as sink:
        # Its own process group: `make` would leave its child running on SIGTERM.
        process = subprocess.Popen(
            _launch(how, port),
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base, process, log)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited on its own
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def _address_seen(base: str) -> str:
    with httpx.Client(base_url=base, timeout=30) as client:
        registered = client.post(
            "/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201, registered.text
        login = client.post(
            "/auth/jwt/login",
            data={"username": "ada@example.com", "password": PASSWORD},
            headers={"X-Forwarded-For": FORGED},
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        sessions = client.get("/users/me/sessions", headers={"Authorization": f"Bearer {token}"})
        address: str = sessions.json()[0]["client_address"]
        return address


@pytest.mark.parametrize("how", ["make run", "python -m app serve", "uvicorn --no-proxy-headers"])
def test_the_documented_launches_ignore_forwarded_headers(tmp_path: Path, how: str) -> None:
    with _started(tmp_path, how) as base:
        assert _address_seen(base) == "127.0.0.1"


def test_bare_uvicorn_believes_x_forwarded_for_from_loopback(tmp_path: Path) -> None:
    """Why the README's uvicorn command carries --no-proxy-headers (and why the check above
    can fail): with uvicorn's defaults the forged address reaches the app."""
    with _started(tmp_path, "uvicorn (its defaults)") as base:
        assert _address_seen(base) == FORGED
