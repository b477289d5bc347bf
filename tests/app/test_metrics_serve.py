"""`python -m app serve --workers 2` on PostgreSQL + Redis: the command sets up the workers'
shared metrics directory itself, both workers serve, and /metrics, whichever worker answers,
shows one aggregated view. The directory is gone once the server has stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.app.processes import PRODUCTION, app_env, fresh_postgres_database, run
from tests.app.processes import start as start_server
from tests.app.test_workers import _spread, _wait_for_access_lines, _wait_for_workers
from tests.redis_server import RedisServer, throwaway_redis
from tests.services import require_postgres

pytestmark = pytest.mark.backend_neutral

TOKEN = "scrape-token-0123456789abcdef"
# A path no route knows: nothing else (the start-up probe, the scrapes) is counted under it.
PROBE = "/metrics-probe"
UNMATCHED_404 = {"method": "GET", "route": "unmatched", "status": "404"}


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_postgres_database(require_postgres(), "gatehouse_metrics") as url:
        yield url


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    yield from throwaway_redis(tmp_path)


def _count(text: str, labels: dict[str, str]) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gatehouse_http_requests_total" and sample.labels == labels:
                return sample.value
    return 0.0


async def test_serve_with_two_workers_reports_one_aggregated_view(
    postgres_url: str, redis: RedisServer, tmp_path: Path
) -> None:
    own_tmp = tmp_path / "tmp"  # where the command makes its directory (TMPDIR)
    own_tmp.mkdir()
    env = app_env(
        tmp_path,
        **PRODUCTION,
        DATABASE_URL=postgres_url,
        REDIS_URL=redis.url,
        METRICS_ENABLED="true",
        METRICS_TOKEN=TOKEN,
        TMPDIR=str(own_tmp),
    )
    assert run(["app", "migrate"], env).returncode == 0
    with start_server(["app", "serve", "--workers", "2"], env, tmp_path / "server.log") as server:
        workers = _wait_for_workers(server, 2)
        made = list(own_tmp.glob("gatehouse-metrics-*"))
        assert len(made) == 1 and any(made[0].glob("*.db")), made

        served: dict[str, int] = {}
        sent = 0
        for attempt in range(10):
            prefix = f"probe{attempt}"
            codes = await _spread(server.base_url, PROBE, prefix, 12)
            assert set(codes) == {404}
            sent += 12
            served.update(_wait_for_access_lines(server, prefix, 12))
            if set(served.values()) == workers:
                break
        assert set(served.values()) == workers, served

        # Every scrape, on a connection of its own (either worker may answer), counts them all.
        for _ in range(6):
            with httpx.Client(timeout=30) as client:
                response = client.get(
                    f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
                )
            assert response.status_code == 200, response.text
            assert _count(response.text, UNMATCHED_404) == sent
        server.process.terminate()
        assert server.process.wait(timeout=60) == 0
    assert list(own_tmp.glob("gatehouse-metrics-*")) == []
    assert TOKEN not in (tmp_path / "server.log").read_text()
