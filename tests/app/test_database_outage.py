"""Database down: 503 problems and readiness 503, the process stays up and recovers by itself.

The test starts its own throwaway PostgreSQL cluster (initdb/pg_ctl) so it can stop it.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app import migrations
from app.factory import create_app
from app.settings import CoreSettings
from tests.conftest import TEST_MODULES, TEST_SECRET
from tests.helpers import PASSWORD, assert_problem, free_port, login, register


class Cluster:
    def __init__(self, bindir: Path, root: Path, port: int) -> None:
        self.bindir, self.root, self.port = bindir, root, port
        self.data = root / "data"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.root / "log"),
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    on_path = shutil.which("initdb")
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or ([on_path] if on_path else [])
    if not found:
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail("initdb is not installed and REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip("initdb is not installed: cannot start a throwaway PostgreSQL")
    root = Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = Cluster(Path(str(found[-1])).parent, root, free_port())
    cluster.init()
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_outage_gives_503_and_recovery_needs_no_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/postgres"
    # Alembic's env runs its own event loop: keep it off this one.
    await asyncio.to_thread(migrations.upgrade, url, TEST_MODULES)
    settings = CoreSettings(
        environment="test", database_url=url, secret_key=TEST_SECRET, data_dir=tmp_path
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await register(client, "ada@example.com")
            assert (await client.get("/health/ready")).status_code == 200

            cluster.stop()
            down = await client.post(
                "/auth/jwt/login", data={"username": "ada@example.com", "password": PASSWORD}
            )
            body = assert_problem(down, 503, "SERVICE_UNAVAILABLE")
            assert "postgres" not in down.text.lower()
            assert "access_token" not in body  # no login without a check
            assert_problem(await client.get("/health/ready"), 503, "SERVICE_UNAVAILABLE")
            assert (await client.get("/health/live")).status_code == 200

            cluster.start()
            tokens = await login(client, "ada@example.com")
            assert tokens["access_token"]
            assert (await client.get("/health/ready")).status_code == 200
