"""`python -m app create-superuser` as a newcomer meets it: one line naming what to fix (the
field, the pending migrations), never a traceback; log lines in the server's format."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.processes import app_env
from tests.helpers import PASSWORD

pytestmark = pytest.mark.backend_neutral

ROOT = Path(__file__).resolve().parents[3]


def _run(args: list[str], env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_an_unmigrated_database_is_named_as_such(tmp_path: Path) -> None:
    """It used to print a 129-line traceback."""
    result = _run(["create-superuser", "--email", "root@example.com"], app_env(tmp_path), PASSWORD)
    line = _one_line(result)
    assert line.startswith("gatehouse: create-superuser: the database is not migrated")
    assert "migrations pending" in line and "python -m app migrate" in line


def test_bad_input_names_the_field(tmp_path: Path) -> None:
    env = app_env(tmp_path)
    bad_email = _run(["create-superuser", "--email", "root-at-example.com"], env, PASSWORD)
    # Not pydantic's "1 validation error for UserCreate": the option, and what is wrong.
    assert _one_line(bad_email) == (
        "gatehouse: create-superuser: --email: value is not a valid email address: "
        "An email address must have an @-sign."
    )
    no_password = _run(["create-superuser", "--email", "root@example.com"], env, "")
    assert "password: standard input gave none" in _one_line(no_password)
    missing = _run(["create-superuser"], env)
    assert missing.returncode == 2 and "--email" in missing.stderr


def test_log_lines_have_the_servers_format(tmp_path: Path) -> None:
    env = app_env(tmp_path)
    assert _run(["migrate"], env).returncode == 0
    created = _run(["create-superuser", "--email", "root@example.com"], env, PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    logged = [json.loads(line) for line in created.stderr.splitlines() if line.startswith("{")]
    registered = next(line for line in logged if line["message"] == "user registered")
    assert registered["level"] == "INFO" and registered["logger"] == "modules.users.manager"
    assert created.stderr.splitlines()[-1].startswith("superuser created: root@example.com (")

    pretty = _run(
        ["create-superuser", "--email", "two@example.com"],
        {**env, "LOG_FORMAT": "pretty"},
        PASSWORD,
    )
    assert pretty.returncode == 0, pretty.stderr
    # The server's pretty line (app/logging.py), not loguru's default "… | INFO | module:…".
    assert re.search(
        r"^\d\d:\d\d:\d\d\.\d{3} INFO +- user registered user_id=", pretty.stderr, re.M
    )
    assert " | INFO | " not in pretty.stderr
