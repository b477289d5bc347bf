"""Clients generated from the served /openapi.json drive a newcomer's flow against a live
server: register {email, password} → form login → me → refresh → sessions → logout → forgot.
The flows (tests/clients/) are type-checked strictly before they run: a schema that needed a
cast, or made a client send a field the user did not mean, fails here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.factory import create_app
from app.settings import CoreSettings
from tests.helpers import PASSWORD
from tests.live_server import serve

FLOWS = Path(__file__).parent / "clients"
BIN = Path(sys.executable).parent
# Majors the flow is written for; npm fetches the newest of each.
NPM_PACKAGES = ["openapi-typescript@7", "openapi-fetch@0", "typescript@5", "@types/node@20"]

# The generated clients check the API's shape: the database behind it changes nothing.
# In .ci/run it runs in the PostgreSQL suite (SPLIT_BACKEND_NEUTRAL, tests/conftest.py).
pytestmark = pytest.mark.backend_neutral(ci_run="postgres")


@pytest.fixture
def live(settings: CoreSettings, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The app on a loopback port, and its /openapi.json saved in a scratch folder."""
    with serve(create_app(settings)) as base_url:
        schema = httpx.get(f"{base_url}/openapi.json", timeout=30).json()
        path = tmp_path / "openapi.json"
        path.write_text(json.dumps(schema))
        yield base_url, path


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=400, env=env, check=False
    )
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_python_client(live: tuple[str, Path], tmp_path: Path) -> None:
    base_url, schema = live
    # The generator formats its output with ruff, which it looks up on PATH.
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    _run(
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(schema),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "gatehouse_client"),
        ],
        cwd=tmp_path,
        env=env,
    )
    shutil.copy(FLOWS / "flow.py", tmp_path / "flow.py")
    env["PYTHONPATH"] = str(tmp_path)
    env["MYPYPATH"] = str(tmp_path)
    # Strict on the flow; the generated package's own style is not ours to judge.
    _run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--follow-imports=silent",
            "--cache-dir",
            str(tmp_path / ".mypy_cache"),
            "flow.py",
        ],
        cwd=tmp_path,
        env=env,
    )
    out = _run([sys.executable, "flow.py", base_url, "py@example.com", PASSWORD], tmp_path, env)
    sent = json.loads(out.strip().splitlines()[-1])
    [registration] = [s for s in sent if s["path"] == "/auth/register"]
    assert json.loads(registration["body"]) == {"email": "py@example.com", "password": PASSWORD}
    for attempt in (s for s in sent if s["path"] == "/auth/jwt/login"):
        fields = dict(pair.split("=", 1) for pair in attempt["body"].split("&"))
        assert set(fields) == {"username", "password"}, attempt


def test_typescript_client(live: tuple[str, Path], tmp_path: Path) -> None:
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        pytest.skip("npm and node are needed for the TypeScript client (CI has both)")
    base_url, schema = live
    work = tmp_path / "ts"
    work.mkdir()
    (work / "package.json").write_text(json.dumps({"private": True, "type": "module"}))
    installed = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NPM_PACKAGES],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    if installed.returncode != 0:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"npm install failed:\n{installed.stderr}")
        pytest.skip(f"npm could not install the packages (offline?): {installed.stderr[-300:]}")
    bin_dir = work / "node_modules" / ".bin"
    _run([str(bin_dir / "openapi-typescript"), str(schema), "-o", "schema.d.ts"], work)
    shutil.copy(FLOWS / "flow.ts", work / "flow.ts")
    (work / "tsconfig.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noUncheckedIndexedAccess": False,
                    "target": "ES2022",
                    "module": "ES2022",
                    "moduleResolution": "Bundler",
                    "types": ["node"],
                    "outDir": "out",
                },
                "files": ["flow.ts"],
            }
        )
    )
    _run([str(bin_dir / "tsc"), "-p", "."], work)
    out = _run([node, "out/flow.js", base_url, "ts@example.com", PASSWORD], work)
    assert "flow ok" in out
