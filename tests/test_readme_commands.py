"""Every command the README shows is one a newcomer can run as written, and something runs it:
this test (a fresh database, the real processes, the README's own command lines), CI
(`.ci/run`), or a named test. A command added to the README without either fails here.

Commands are the lines of its ```sh blocks and the inline `code` that starts like a command
(`make …`, `.venv/bin/…`, `python -m app …`, `uvicorn …`, `curl …`, `.ci/run`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_until_live

# In .ci/run it runs in the PostgreSQL suite (SPLIT_BACKEND_NEUTRAL, tests/conftest.py).
pytestmark = pytest.mark.backend_neutral(ci_run="postgres")

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
ENV_PREFIX = re.compile(r"^(?:[A-Z_]+=\S+\s+)+")
LOOKS_LIKE_A_COMMAND = re.compile(
    r"^(make |\.venv/bin/\S|python -m app|uvicorn |curl |\.ci/run|printf )"
)

# How each command is exercised. "here": test_the_readme_commands_run below runs it; "ci":
# .ci/run runs it; "recipe": a make target whose recipe `make -n` prints and checks (tools
# that exist, modules that import), not run here (it rewrites files or needs wrk; `make openapi`
# is scripts/openapi_contract.py, which tests/test_openapi_snapshot.py drives).
KNOWN: list[tuple[str, str]] = [
    (r"make run", "here"),
    (r"make dev", "here"),
    (r"make migrate", "here"),
    (
        r"(\.venv/bin/)?uvicorn app\.main:app( --no-proxy-headers)?( --reload)?( --port \d+)?",
        "here",
    ),
    (r"(\.venv/bin/)?python -m app --help", "here"),
    (r"(\.venv/bin/)?python -m app serve", "here"),  # what `make run` runs
    (r"(\.venv/bin/)?python -m app migrate", "here"),  # what `make migrate` runs
    (r"(\.venv/bin/)?python -m app openapi", "here"),
    (r"printf .* \| \.venv/bin/python -m app create-superuser --email \S+", "here"),
    (r"(\.venv/bin/)?python -m app create-superuser --email \S+", "here"),
    (r"curl .*", "here"),
    (r"(\.venv/bin/)?python -m app new-module \w+", "tests/app/test_scaffold.py::new-module"),
    (r"(\.venv/bin/)?python -m app serve --workers \d+", "tests/app/test_workers.py::--workers"),
    (r"(\.venv/bin/)?python -m app serve --help", "tests/app/test_serve.py::--help"),
    (r"(\.venv/bin/)?python -m app purge", "tests/modules/users/test_session_purge.py::purge"),
    (
        r"(\.venv/bin/)?python -m app create-superuser",
        "tests/modules/users/test_create_superuser.py::create-superuser",
    ),
    (
        r"(\.venv/bin/)?uvicorn app\.main:app --workers N",
        "tests/app/test_metrics_workers.py::--workers",
    ),
    (r"make lint|make test|make test-postgres|\.ci/run", "ci"),
    (
        r"make fmt|make lock|make bench|make bench-auth|make openapi"
        r"|make migration MODULE=\w+ MSG=\"[^\"]+\""
        r"|make serve-prod( WORKERS=\d+)?",
        "recipe",
    ),
]
# Words, not commands: the bare name of a program or file the README explains.
NOT_COMMANDS = {".venv/bin/uvicorn"}


def _commands() -> list[str]:
    text = README.read_text()
    found: list[str] = []
    for language, body in FENCE.findall(text):
        if language not in ("sh", "bash", "shell", "console"):
            continue
        joined = re.sub(r"\\\n\s*", " ", body)
        for line in joined.splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line and not line.startswith("#"):
                found.append(line)
    outside = FENCE.sub("", text)
    for span in INLINE.findall(outside):
        command = ENV_PREFIX.sub("", span.strip())
        if LOOKS_LIKE_A_COMMAND.match(command) and command not in NOT_COMMANDS:
            found.append(command)
    return found


def _how(command: str) -> str | None:
    command = ENV_PREFIX.sub("", command)
    for pattern, how in KNOWN:
        if re.fullmatch(pattern, command):
            return how
    return None


def test_every_readme_command_is_exercised() -> None:
    commands = _commands()
    assert any(c.startswith("curl ") for c in commands)  # the extraction itself works
    unknown = [c for c in commands if _how(c) is None]
    assert not unknown, f"README commands nothing exercises (add them to KNOWN): {unknown}"
    ci = CI.read_text()
    for command in commands:
        how = _how(command)
        if how == "ci":
            # A line of .ci/run starts with it (it may run in the background, logging to a file).
            in_ci = re.search(rf"^{re.escape(command)}(\s|$)", ci, re.M)
            assert command == ".ci/run" or in_ci, command
        elif how is not None and how.startswith("tests/"):
            # "tests/<file>::<needle>": that test file runs the command (it names the needle).
            path, _, needle = how.partition("::")
            source = (ROOT / path).read_text()
            assert needle and needle in source, (command, how)
        elif how == "recipe":
            target = command.split()[1]
            dry = subprocess.run(
                ["make", "-n", *shlex.split(command)[1:]],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            assert dry.returncode == 0, (command, dry.stderr)
            assert ".venv/bin/" in dry.stdout, (target, dry.stdout)


def test_the_readme_has_no_placeholder_commands() -> None:
    for command in _commands():
        assert "…" not in command and "NAME" not in command.split(), command


# Running them ------------------------------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A newcomer's shell: development, a database of its own, nothing from the test run."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "ENVIRONMENT": "development",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/readme.db",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


def _shell(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@contextmanager
def _serving(command: str, env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Start `command` (its own process group, so a reloader's child stops with it) and wait
    until it answers /health/live on `port`."""
    with log.open("w") as sink:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_live(base, process, log, timeout=120)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _curl_commands() -> list[str]:
    return [c for c in _commands() if c.startswith("curl ")]


def test_the_readme_commands_run(tmp_path: Path) -> None:
    env = _env(tmp_path)
    commands = _commands()

    migrated = _shell("make migrate", env)
    assert migrated.returncode == 0, migrated.stderr[-2000:]

    admin = next(c for c in commands if "create-superuser" in c and c.startswith("printf"))
    created = _shell(admin, env)
    assert created.returncode == 0, created.stderr
    assert "superuser created: admin@example.com" in created.stderr

    helped = _shell(".venv/bin/python -m app --help", env)
    assert helped.returncode == 0 and "create-superuser" in helped.stdout
    schema = _shell(".venv/bin/python -m app openapi", env)
    assert schema.returncode == 0 and "/users" in json.loads(schema.stdout)["paths"]

    # make run, then the README's curl lines, as written, against it (its port instead of 8000).
    port = free_port()
    with _serving("make run", {**env, "PORT": str(port)}, port, tmp_path / "run.log") as base:
        outputs: list[dict[str, object]] = []
        for curl in _curl_commands():
            line = curl.replace("http://127.0.0.1:8000", base)
            token = {}
            if outputs and "access_token" in outputs[-1]:
                token = {"ACCESS_TOKEN": str(outputs[-1]["access_token"])}
            ran = _shell(line, {**env, **token})
            assert ran.returncode == 0, (line, ran.stderr)
            outputs.append(json.loads(ran.stdout))
        register, login, me, wrong = outputs
        assert register["email"] == "ada@example.com"
        assert login["token_type"] == "bearer"
        assert me["email"] == "ada@example.com"
        assert wrong["code"] == "LOGIN_BAD_CREDENTIALS" and wrong["status"] == 400
        admin_login = httpx.post(
            f"{base}/auth/jwt/login",
            data={"username": "admin@example.com", "password": "a long passphrase only you know"},
            timeout=60,
        )
        assert admin_login.status_code == 200, admin_login.text

    port = free_port()
    with _serving("make dev", {**env, "PORT": str(port)}, port, tmp_path / "dev.log"):
        pass

    uvicorn = next(c for c in commands if c.startswith(".venv/bin/uvicorn app.main:app"))
    port = free_port()
    serving = _serving(
        f"{uvicorn} --port {port}", {**env, "PORT": str(port)}, port, tmp_path / "uv.log"
    )
    with serving:
        pass


@pytest.mark.parametrize("how", ["here", "ci", "recipe"])
def test_each_kind_of_coverage_is_used(how: str) -> None:
    assert any(_how(c) == how for c in _commands()), how
