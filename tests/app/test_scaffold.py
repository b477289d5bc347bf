"""`python -m app new-module NAME` makes a module that works: scaffolded into a copy of the
project, enabled, migrated, its own tests green, its routes private and documented as such."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.scaffold import ScaffoldError, check_name, create_module
from tests.conftest import TEST_SECRET
from tests.helpers import PASSWORD, assert_problem, bearer, free_port

# In .ci/run it runs in the PostgreSQL suite (SPLIT_BACKEND_NEUTRAL, tests/conftest.py).
pytestmark = pytest.mark.backend_neutral(ci_run="postgres")

ROOT = Path(__file__).resolve().parents[2]
BEARER: list[dict[str, list[str]]] = [{"OAuth2PasswordBearer": []}]


def _copy_project(target: Path) -> Path:
    for name in ("app", "modules", "tests"):
        shutil.copytree(
            ROOT / name,
            target / name,
            ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"),
        )
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def _env(tree: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tree),
        "PYTHONPATH": str(tree),
        "ENVIRONMENT": "test",
        "SECRET_KEY": TEST_SECRET,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tree}/data/app.db",
        "DATA_DIR": str(tree / "data"),
        "LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


def _run(tree: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def server_for() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def _wait_live(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("the server did not come up")


def test_a_scaffolded_module_works_end_to_end(
    tmp_path: Path, server_for: list[subprocess.Popen[bytes]]
) -> None:
    tree = _copy_project(tmp_path / "project")
    created = _run(tree, ["app", "new-module", "notes"], _env(tree))
    assert created.returncode == 0, created.stderr
    assert {p.name for p in (tree / "modules" / "notes").iterdir()} >= {
        "__init__.py",
        "endpoints.py",
        "service.py",
        "repository.py",
        "models.py",
        "schemas.py",
        "dependencies.py",
        "exceptions.py",
        "settings.py",
        "migrations",
    }
    # The house style holds for what it wrote: `make lint`'s ruff steps pass on it.
    written = [str(tree / "modules" / "notes"), str(tree / "tests" / "modules" / "notes")]
    ruff = Path(sys.executable).parent / "ruff"
    for check in (["check", *written], ["format", "--check", *written]):
        result = subprocess.run(
            [str(ruff), *check], cwd=tree, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr

    env = _env(tree, MODULES="users,integrations,notes")
    migrated = _run(tree, ["app", "migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    # Dropping it from MODULES later: one line naming its revision, not Alembic's traceback.
    without = _run(tree, ["app", "migrate"], _env(tree, MODULES="users,integrations"))
    assert without.returncode == 1
    assert len(without.stderr.strip().splitlines()) == 1, without.stderr
    assert "notes_0001" in without.stderr

    # Misreading "add notes to MODULES" as MODULES=notes: one line saying what is missing.
    alone = _run(tree, ["app", "migrate"], _env(tree, MODULES="notes"))
    assert alone.returncode == 1 and "Traceback" not in alone.stderr
    assert alone.stderr.strip() == (
        "gatehouse: module 'notes' requires module 'users': add 'users' to MODULES"
    )

    # Its own tests, as `make test` runs them once MODULES names it: green, none skipped.
    tests = _run(tree, ["pytest", "tests/modules/notes", "-q", "-p", "no:cacheprovider"], env)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "skipped" not in tests.stdout
    assert " passed" in tests.stdout

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--no-migrate", "--port", str(port)],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server_for.append(process)
    base = f"http://127.0.0.1:{port}"
    _wait_live(base, process)
    with httpx.Client(base_url=base, timeout=30) as client:
        paths = client.get("/openapi.json").json()["paths"]
        for path, method in [("/notes", "get"), ("/notes", "post"), ("/notes/{item_id}", "get")]:
            assert paths[path][method]["security"] == BEARER, (path, method)

        anonymous = client.get("/notes")
        assert_problem(anonymous, 401)

        email = "ada@example.com"
        assert client.post("/auth/register", json={"email": email, "password": PASSWORD}).is_success
        token = client.post(
            "/auth/jwt/login", data={"username": email, "password": PASSWORD}
        ).json()["access_token"]
        listed = client.get("/notes", headers=bearer(token))
        assert listed.status_code == 200
        assert listed.json() == []
        # Writing needs notes:write, which the module declares and no role grants yet.
        refused = client.post("/notes", json={"title": "mine"}, headers=bearer(token))
        assert "'notes:write'" in assert_problem(refused, 403, "FORBIDDEN")["detail"]
        assert paths["/notes"]["post"]["security"] == BEARER


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Billing", "is not a module name"),
        ("bill-ing", "is not a module name"),
        ("9lives", "is not a module name"),
        ("x" * 31, "is not a module name"),
        ("class", "is reserved"),
        ("health", "is reserved"),
        ("users", "is reserved"),
    ],
)
def test_bad_names_are_refused(tmp_path: Path, name: str, says: str) -> None:
    with pytest.raises(ScaffoldError, match=says):
        check_name(name, tmp_path)
    assert not (tmp_path / "modules").exists()


def test_an_existing_module_is_refused_with_one_line(tmp_path: Path) -> None:
    create_module("billing", root=tmp_path)
    before = (tmp_path / "modules" / "billing" / "service.py").read_text()
    with pytest.raises(ScaffoldError, match="modules/billing already exists"):
        create_module("billing", root=tmp_path)
    assert (tmp_path / "modules" / "billing" / "service.py").read_text() == before


def test_the_command_prints_one_line_and_fails(tmp_path: Path) -> None:
    result = _run(ROOT, ["app", "new-module", "integrations"], _env(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == "gatehouse: new-module: modules/integrations already exists"
    bad = _run(ROOT, ["app", "new-module", "Bad-Name"], _env(tmp_path))
    assert bad.returncode == 1
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "'Bad-Name' is not a module name" in bad.stderr
