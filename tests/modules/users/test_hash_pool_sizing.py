"""The hashing threads share the cores among the worker processes (WEB_CONCURRENCY): N workers
each starting cores - 1 threads would make N x (cores - 1) hashes fight for the cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.settings import CoreSettings
from modules.users.runtime import open_runtime
from modules.users.settings import UsersSettings
from tests.conftest import TEST_SECRET

CORES = 9  # a machine this test pretends to run on (the count is all that is read)


@pytest.mark.parametrize(
    ("processes", "configured", "threads"),
    [(1, 0, 8), (2, 0, 4), (4, 0, 2), (16, 0, 1), (4, 3, 3)],
)
async def test_hash_threads_per_process_share_the_cores(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, processes: int, configured: int, threads: int
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(CORES)), raising=False)
    monkeypatch.setenv("WEB_CONCURRENCY", str(processes))
    core = CoreSettings(environment="test", secret_key=TEST_SECRET, data_dir=tmp_path)
    assert core.workers == processes
    settings = UsersSettings(password_hash_workers=configured)
    async with open_runtime(core, settings) as runtime:
        assert runtime.hasher.workers == threads
