"""Several worker processes, one view: with PROMETHEUS_MULTIPROC_DIR, whichever worker answers
/metrics reports the requests every worker served (real processes on 127.0.0.1)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.app.processes import ROOT, app_env, run
from tests.conftest import TEST_MODULES
from tests.helpers import free_port

pytestmark = pytest.mark.backend_neutral

LIVE = {"method": "GET", "route": "/health/live", "status": "200"}
REQUESTS = "gatehouse_http_requests_total"


def _live_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == REQUESTS and sample.labels == LIVE:
                return sample.value
    return 0.0


def _per_worker(metrics_dir: Path, scratch: Path) -> dict[str, float]:
    """/health/live requests counted in each worker's own file (pid → count)."""
    shares = {}
    for file in metrics_dir.glob("counter_*.db"):
        alone = scratch / file.stem
        alone.mkdir()
        shutil.copy(file, alone / file.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        shares[file.stem.removeprefix("counter_")] = _live_count(generate_latest(registry).decode())
    return shares


def _get(url: str) -> int:
    # A new connection per request: the kernel hands each to whichever worker accepts it.
    with httpx.Client(timeout=30) as client:
        return client.get(url).status_code


def test_two_workers_report_one_aggregated_view(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = app_env(
        tmp_path,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/workers.db",
        MODULES=",".join(TEST_MODULES),
        PASSWORD_HASH_WORKERS="1",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    migrate = run(["app", "migrate"], env)
    assert migrate.returncode == 0, migrate.stderr
    port = free_port()
    log = tmp_path / "server.log"
    # Its own start (not processes.start): a liveness probe would add a request to the counts.
    with log.open("w") as sink:
        server = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "app.main:app", "--workers", "2"),
                *("--host", "127.0.0.1", "--port", str(port)),
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while log.read_text().count("started: environment=") < 2:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the two workers did not start"
            time.sleep(0.2)

        # Requests until both workers have served some (the kernel decides who accepts).
        sent = 0
        scratch = tmp_path / "scratch"
        with ThreadPoolExecutor(max_workers=8) as pool:
            while True:
                codes = list(pool.map(_get, [f"{base}/health/live"] * 20))
                assert codes == [200] * 20
                sent += 20
                shutil.rmtree(scratch, ignore_errors=True)
                scratch.mkdir()
                shares = _per_worker(metrics_dir, scratch)
                if sum(1 for count in shares.values() if count > 0) >= 2:
                    break
                assert sent < 400, f"one worker served everything: {shares}"
        assert sum(shares.values()) == sent

        # Each scrape, whichever worker answers it, counts every worker's requests.
        for _ in range(6):
            with httpx.Client(timeout=30) as client:
                response = client.get(f"{base}/metrics")
            assert response.status_code == 200, response.text
            assert _live_count(response.text) == sent
    finally:
        server.terminate()
        server.wait(timeout=60)
