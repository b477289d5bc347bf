"""The production profile over real processes: how the schema gets migrated (development at
start-up, production by `python -m app migrate`), readiness while it is behind, the `serve`
command's options and its refusals."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.app.processes import PRODUCTION, app_env, run, start
from tests.helpers import PASSWORD

pytestmark = pytest.mark.backend_neutral

# Every revision of the default modules: readiness must name each one while it is pending.
FIRST_REVISIONS = ("users_0001", "integrations_0001")


def _register(base_url: str, email: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/auth/register", json={"email": email, "password": PASSWORD}, timeout=60
    )


def test_bare_uvicorn_in_development_migrates_a_fresh_database(tmp_path: Path) -> None:
    """The seed's entry point on a fresh checkout: no `make migrate` first."""
    env = app_env(tmp_path, ENVIRONMENT="development")
    del env["SECRET_KEY"]  # development generates its own in DATA_DIR
    assert not (tmp_path / "app.db").exists()
    with start(["uvicorn", "app.main:app"], env, tmp_path / "server.log") as server:
        registered = _register(server.base_url, "ada@example.com")
        assert registered.status_code == 201, registered.text
        ready = httpx.get(f"{server.base_url}/health/ready", timeout=30)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["schema"] == {"status": "ok"}
    applied = [
        line["message"]
        for line in server.log_lines()
        if line["message"].startswith("migrations applied at start-up")
    ]
    assert len(applied) == 1 and "users_0001" in applied[0]
    # That one line says what was applied; Alembic's own INFO chatter (its plugins, its
    # dialect, each step) stays out of a newcomer's terminal.
    alembic = [line for line in server.log_lines() if line.get("logger", "").startswith("alembic")]
    assert alembic == []
    # A line from a library's stdlib logger names that logger (it said "logging" before).
    started = [line for line in server.log_lines() if "Started server process" in line["message"]]
    assert [line["logger"] for line in started] == ["uvicorn.error"]


def test_production_never_migrates_readiness_names_the_pending_migrations(
    tmp_path: Path,
) -> None:
    env = app_env(tmp_path, **PRODUCTION)
    with start(["app", "serve"], env, tmp_path / "server.log") as server:
        ready = httpx.get(f"{server.base_url}/health/ready", timeout=30)
        assert ready.status_code == 503
        assert ready.headers["content-type"] == "application/problem+json"
        body = ready.json()
        schema = body["checks"]["schema"]
        assert schema["status"] == "down"
        assert schema["detail"]["run"] == "python -m app migrate"
        for revision in FIRST_REVISIONS:
            assert revision in schema["detail"]["pending"]
            assert revision in body["detail"]
        assert "python -m app migrate" in body["detail"]
        # The database itself answers: only the schema is behind.
        assert body["checks"]["database"] == {"status": "ok"}

        # A request that needs the missing tables: 503, and the log says why (not "database
        # unavailable").
        refused = _register(server.base_url, "ada@example.com")
        assert refused.status_code == 503
        assert refused.json()["code"] == "SERVICE_UNAVAILABLE"
        request_id = refused.headers["x-request-id"]
        errors = [
            line
            for line in server.log_lines()
            if line["level"] == "ERROR" and line.get("request_id") == request_id
        ]
        assert len(errors) == 1, errors
        assert errors[0]["message"].startswith("database schema is behind the code: ")
        assert "users_0001" in errors[0]["message"]
        assert "python -m app migrate" in errors[0]["message"]
        assert "database unavailable" not in server.log.read_text()
        # Nothing was migrated behind the operator's back: still behind.
        assert httpx.get(f"{server.base_url}/health/ready", timeout=30).status_code == 503

        migrated = run(["app", "migrate"], env)
        assert migrated.returncode == 0, migrated.stderr
        assert "migrations applied: users_0001" in migrated.stderr

        ready = httpx.get(f"{server.base_url}/health/ready", timeout=30)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["schema"] == {"status": "ok"}
        assert _register(server.base_url, "ada@example.com").status_code == 201

        # A graceful stop of the one process: exit status 0.
        server.process.terminate()
        assert server.process.wait(timeout=60) == 0
        assert any("Finished server process" in line["message"] for line in server.log_lines())

    again = run(["app", "migrate"], env)
    assert again.returncode == 0
    assert "nothing to apply: the schema is at head" in again.stderr


def test_serve_help_describes_every_option_with_its_default(tmp_path: Path) -> None:
    result = run(["app", "serve", "--help"], app_env(tmp_path))
    assert result.returncode == 0
    # argparse lists each option on a line of its own, indented by two spaces.
    options = result.stdout.split("options:", 1)[1]
    described = {
        entry.split()[0]: " ".join(entry.split())
        for entry in re.split(r"\n  (?=-)", options)
        if entry.strip()
    }
    for option, default in (
        ("--host", "default: 127.0.0.1"),
        ("--port", "default: 8000"),
        ("--workers", "default: 1"),
        ("--graceful-timeout", "default: 30.0"),
        ("--reload", "default: off"),
        ("--no-migrate", "by default in development only"),
    ):
        assert default in described[option], (option, described[option])
    # WEB_CONCURRENCY is the default of --workers (uvicorn's own variable).
    workers = run(["app", "serve", "--help"], app_env(tmp_path, WEB_CONCURRENCY="3"))
    assert "default: 3" in " ".join(workers.stdout.split())


def test_serve_refuses_several_workers_on_sqlite_and_reload_with_workers(tmp_path: Path) -> None:
    sqlite = run(["app", "serve", "--workers", "2"], app_env(tmp_path))
    assert sqlite.returncode == 2
    assert "needs PostgreSQL" in sqlite.stderr
    assert "one writer at a time" in sqlite.stderr
    env = app_env(tmp_path, DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:1/none")
    reload = run(["app", "serve", "--workers", "2", "--reload"], env)
    assert reload.returncode == 2
    assert "--reload runs one process" in reload.stderr
    zero = run(["app", "serve", "--workers", "0"], env)
    assert zero.returncode == 2
    assert "must be at least 1" in zero.stderr
