"""`python -m app …` and `uvicorn app.main:app` as a user runs them: real processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.app.processes import app_env, start
from tests.conftest import TEST_SECRET
from tests.helpers import PASSWORD, free_port

pytestmark = pytest.mark.backend_neutral

ROOT = Path(__file__).resolve().parents[2]


def _run(
    args: list[str], env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_without_secret_key_exits_with_one_line(tmp_path: Path) -> None:
    env = app_env(tmp_path, ENVIRONMENT="production", PUBLIC_URL="https://auth.example.com")
    del env["SECRET_KEY"]
    for args in (["app", "serve"], ["uvicorn", "app.main:app", "--port", str(free_port())]):
        result = _run(args, env)
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [
            "gatehouse: invalid settings: SECRET_KEY is required when ENVIRONMENT=production "
            "(at least 32 random bytes)"
        ], result.stderr


def test_production_with_weak_defaults_exits_naming_them_in_one_line(tmp_path: Path) -> None:
    """`SECRET_KEY=aaaa…` (long enough) and the default PUBLIC_URL used to start production."""
    env = app_env(tmp_path, ENVIRONMENT="production", SECRET_KEY="a" * 48)
    for args in (["app", "serve"], ["uvicorn", "app.main:app", "--port", str(free_port())]):
        result = _run(args, env)
        assert result.returncode != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith(
            "gatehouse: invalid settings: SECRET_KEY looks like a placeholder"
        )
        assert "PUBLIC_URL must be set when ENVIRONMENT=production" in lines[0]
        assert "a" * 48 not in lines[0]
        loopback_url = {"SECRET_KEY": TEST_SECRET, "PUBLIC_URL": "http://127.0.0.1:8000"}
        loopback = _run(args, {**env, **loopback_url})
        assert loopback.returncode != 0
        assert "PUBLIC_URL must not be a loopback" in loopback.stderr


def test_unknown_module_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = _run(["app", "openapi"], app_env(tmp_path, MODULES="users,integrations,billing"))
    assert result.returncode == 1
    assert result.stderr.strip() == "gatehouse: module 'billing': no package modules/billing"


def test_openapi_command_prints_the_schema(tmp_path: Path) -> None:
    result = _run(["app", "openapi"], app_env(tmp_path))
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert "/auth/register" in schema["paths"]


def test_migrate_then_create_superuser_from_stdin(tmp_path: Path) -> None:
    env = app_env(tmp_path)
    assert _run(["app", "migrate"], env).returncode == 0
    created = _run(["app", "create-superuser", "--email", "root@example.com"], env, PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert PASSWORD not in created.stdout + created.stderr
    again = _run(["app", "create-superuser", "--email", "root@example.com"], env, PASSWORD + "\n")
    assert again.returncode == 1
    assert "already exists" in again.stderr
    weak = _run(["app", "create-superuser", "--email", "two@example.com"], env, "short\n")
    assert weak.returncode == 1
    assert "at least 8" in weak.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The real server (`python -m app serve`) on a free port, its log in a file."""
    log = tmp_path / "server.log"
    env = app_env(tmp_path)
    assert _run(["app", "migrate"], env).returncode == 0
    assert (
        _run(["app", "create-superuser", "--email", "root@example.com"], env, PASSWORD + "\n")
    ).returncode == 0
    with start(["app", "serve"], env, log) as running:
        yield running.base_url, log


def test_real_server_over_tcp(server: tuple[str, Path]) -> None:
    base, log = server
    with httpx.Client(base_url=base, timeout=60) as client:
        registered = client.post(
            "/auth/register", json={"email": "ada@example.com", "password": PASSWORD}
        )
        assert registered.status_code == 201
        login = client.post(
            "/auth/jwt/login",
            data={"username": "ada@example.com", "password": PASSWORD},
            headers={"X-Request-ID": "tcp-test-1"},
        )
        assert login.status_code == 200
        assert login.headers["x-request-id"] == "tcp-test-1"
        token = login.json()["access_token"]
        me = client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["email"] == "ada@example.com"

        # The superuser made by the CLI can use the superuser routes.
        root = client.post(
            "/auth/jwt/login", data={"username": "root@example.com", "password": PASSWORD}
        ).json()["access_token"]
        other = client.get(
            f"/users/{registered.json()['id']}", headers={"Authorization": f"Bearer {root}"}
        )
        assert other.status_code == 200
        forbidden = client.get(
            f"/users/{registered.json()['id']}", headers={"Authorization": f"Bearer {token}"}
        )
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"] == "application/problem+json"

    time.sleep(0.2)  # let the access line reach the file
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    tagged = [line for line in lines if line.get("request_id") == "tcp-test-1"]
    assert any(line.get("path") == "/auth/jwt/login" for line in tagged)
    text = log.read_text()
    assert PASSWORD not in text and token not in text and TEST_SECRET not in text


def test_serve_port_reaches_the_mailed_links(tmp_path: Path) -> None:
    """`serve --port P` with no PORT set: the mailed link names P (PUBLIC_URL's default is the
    served address), and opening it gives the reset page."""
    env = app_env(tmp_path)
    assert _run(["app", "migrate"], env).returncode == 0
    log = tmp_path / "serve.log"
    with start(["app", "serve"], env, log) as running:
        base = running.base_url
        with httpx.Client(base_url=base, timeout=60) as client:
            body = {"email": "ada@example.com", "password": PASSWORD}
            assert client.post("/auth/register", json=body).status_code == 201
            asked = client.post("/auth/forgot-password", json={"email": "ada@example.com"})
            assert asked.status_code == 202
            deadline = time.monotonic() + 60
            while "/auth/reset-password?token=" not in log.read_text():
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
            link = next(
                line.strip()
                for line in log.read_text().splitlines()
                if "/auth/reset-password?token=" in line
            )
            assert link.startswith(f"{base}/auth/reset-password?token="), link
            page = client.get(link)
            assert page.status_code == 200 and "<form" in page.text
